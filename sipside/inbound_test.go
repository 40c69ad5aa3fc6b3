package sipside

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/sipua"
	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/model"
)

// A MESSAGE from SIP becomes a model.Message for the component, and is
// answered 200 only once the component reports it delivered.
func TestInboundDeliveredThenOK(t *testing.T) {
	e := startEnv(t, withConfig(func(c *config.SIP) { c.DeliveryWait = config.Duration{Duration: 2 * time.Second} }))
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			body := "Grüße aus Köln 👋🏽 — ça va? " + tr
			start := time.Now()
			done := e.sendAsync(tr, "sip:alice@xmpp.test", "text/plain; charset=UTF-8", body,
				sipua.WithHeader("Subject", "Hallo"), sipua.WithHeader("Content-Language", "de"),
				sipua.WithCallID("in-ok-"+tr))

			ev := e.mustEvent()
			if ev.Type != model.EventMessage || !strings.HasPrefix(ev.ID, "s:") {
				t.Fatalf("event %q of type %q", ev.ID, ev.Type)
			}
			msg := decode[model.Message](t, ev)
			wantFrom := address.Address{User: "bob", Domain: "sip.test"}
			wantTo := address.Address{User: "alice", Domain: "xmpp.test"}
			if msg.Body != body || msg.From != wantFrom || msg.To != wantTo || msg.Type != model.Chat ||
				msg.Subject != "Hallo" || msg.Lang != "de" {
				t.Errorf("message %+v", msg)
			}
			if ev.ID != "s:"+msg.ID || msg.ID == "" {
				t.Errorf("event id %q, message id %q", ev.ID, msg.ID)
			}
			if msg.ConvID != model.ConversationID(wantFrom, wantTo) || ev.Key != msg.ConvID {
				t.Errorf("conv %q, key %q", msg.ConvID, ev.Key)
			}
			if msg.ReplyTo != "to-sip.reply."+instance {
				t.Errorf("reply topic %q", msg.ReplyTo)
			}
			select {
			case r := <-done:
				t.Fatalf("answered %d before the component's verdict", r.res.StatusCode)
			case <-time.After(100 * time.Millisecond):
			}

			e.reply(ev, msg, nil)
			r := wait(t, done)
			if r.res.StatusCode != 200 || !hasToTag(r.res) || len(r.res.Body()) != 0 {
				t.Fatalf("got %d (To tag %v, body %q), want 200 with a To tag and no body", r.res.StatusCode, hasToTag(r.res), r.res.Body())
			}
			if r.at.Sub(start) >= 2*time.Second {
				t.Errorf("200 came after DeliveryWait (%v)", r.at.Sub(start))
			}
		})
	}
	if n := counter(t, e.srv.metrics.deliveryWait.WithLabelValues(waitOK)); n != 2 {
		t.Errorf("delivery wait 200 counted %v times, want 2", n)
	}
	if n := counter(t, e.srv.metrics.requestsIn.WithLabelValues("MESSAGE", "2xx")); n != 2 {
		t.Errorf("MESSAGE/2xx counted %v times, want 2", n)
	}
}

// An XMPP error from the component is answered per RFC 7247 Table E1.
func TestInboundXMPPErrorPerTableE1(t *testing.T) {
	e := startEnv(t, withConfig(func(c *config.SIP) { c.DeliveryWait = config.Duration{Duration: 2 * time.Second} }))
	for _, tc := range []struct {
		cond, text string
		status     int
		reason     string
	}{
		{model.ItemNotFound, "", 404, "Not Found"},
		{model.RecipientUnavailable, "alice is offline", 480, "alice is offline"},
		{model.ServiceUnavailable, "", 503, "Service Unavailable"},
		{model.Forbidden, "blocked\r\nInjected: yes", 403, "blocked Injected: yes"},
	} {
		t.Run(tc.cond, func(t *testing.T) {
			done := e.sendAsync("udp", "sip:alice@xmpp.test", "text/plain", "hello "+tc.cond)
			ev := e.mustEvent()
			msg := decode[model.Message](t, ev)
			xerr := model.FromXMPP(tc.cond, tc.text)
			e.reply(ev, msg, &xerr)
			r := wait(t, done)
			if r.res.StatusCode != tc.status || r.res.Reason != tc.reason || !hasToTag(r.res) {
				t.Errorf("got %d %q (To tag %v), want %d %q", r.res.StatusCode, r.res.Reason, hasToTag(r.res), tc.status, tc.reason)
			}
			if r.res.GetHeader("Injected") != nil {
				t.Error("reason text injected a header")
			}
		})
	}
	if n := counter(t, e.srv.metrics.deliveryWait.WithLabelValues(waitError)); n != 4 {
		t.Errorf("delivery wait errors counted %v, want 4", n)
	}
}

// With no verdict within DeliveryWait, the queued MESSAGE is answered 202.
func TestInboundAcceptedWhenNoVerdict(t *testing.T) {
	const dw = 300 * time.Millisecond
	e := startEnv(t, withConfig(func(c *config.SIP) { c.DeliveryWait = config.Duration{Duration: dw} }))
	start := time.Now()
	done := e.sendAsync("udp", "sip:alice@xmpp.test", "text/plain", "anyone there?")
	ev := e.mustEvent()
	r := wait(t, done)
	if r.res.StatusCode != 202 || !hasToTag(r.res) {
		t.Fatalf("got %d, want 202 with To tag", r.res.StatusCode)
	}
	if el := r.at.Sub(start); el < dw {
		t.Errorf("202 after %v, before DeliveryWait %v", el, dw)
	}
	// A late verdict finds nobody waiting and is dropped quietly.
	e.reply(ev, decode[model.Message](t, ev), nil)
	if n := counter(t, e.srv.metrics.deliveryWait.WithLabelValues(waitAccepted)); n != 1 {
		t.Errorf("202 counted %v, want 1", n)
	}
}

// message/cpim around text/plain is unwrapped.
func TestInboundCPIM(t *testing.T) {
	e := startEnv(t)
	cpim := "From: <sip:bob@sip.test>\r\nTo: <sip:alice@xmpp.test>\r\nDateTime: 2026-01-02T03:04:05Z\r\n\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Language: fr\r\n\r\n" +
		"Bonjour 🇫🇷\r\nsecond line"
	done := e.sendAsync("tcp", "sip:alice@xmpp.test", "message/cpim", cpim)
	msg := decode[model.Message](t, e.mustEvent())
	if msg.Body != "Bonjour 🇫🇷\r\nsecond line" || msg.Lang != "fr" {
		t.Errorf("body %q lang %q", msg.Body, msg.Lang)
	}
	if r := wait(t, done); r.res.StatusCode != 202 {
		t.Errorf("got %d", r.res.StatusCode)
	}
}

// Bodies sipside cannot carry are refused before anything is published.
func TestInboundRefused(t *testing.T) {
	e := startEnv(t, withConfig(func(c *config.SIP) { c.MaxMessageBytes = 4096 }))
	cpimHTML := "From: <sip:bob@sip.test>\r\n\r\nContent-Type: text/html\r\n\r\n<b>hi</b>"
	for _, tc := range []struct {
		name, tr, to, ct, body string
		status                 int
		accept                 bool
	}{
		{"html only", "udp", "sip:alice@xmpp.test", "text/html", "<b>hi</b>", 415, true},
		{"application/foo", "udp", "sip:alice@xmpp.test", "application/foo", "x", 415, true},
		{"cpim around html", "udp", "sip:alice@xmpp.test", "message/cpim", cpimHTML, 415, true},
		{"no content type", "udp", "sip:alice@xmpp.test", "", "x", 415, true},
		{"oversize", "tcp", "sip:alice@xmpp.test", "text/plain", strings.Repeat("a", 4097), 413, false},
		{"at the limit", "tcp", "sip:alice@nowhere.test", "text/plain", strings.Repeat("a", 4096), 404, false},
		{"invalid UTF-8", "udp", "sip:alice@xmpp.test", "text/plain", "caf\xe9", 400, false},
		{"NUL", "udp", "sip:alice@xmpp.test", "text/plain", "a\x00b", 400, false},
		{"unserved domain", "udp", "sip:alice@elsewhere.test", "text/plain", "x", 404, false},
		{"malformed CPIM", "udp", "sip:alice@xmpp.test", "message/cpim", "no blank line", 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := e.send(ctx, tc.tr, tc.to, tc.ct, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status || !hasToTag(res) {
				t.Fatalf("got %d %s (To tag %v), want %d", res.StatusCode, res.Reason, hasToTag(res), tc.status)
			}
			if acc := header(res, "Accept"); tc.accept && acc != "text/plain, message/cpim" {
				t.Errorf("Accept %q", acc)
			}
		})
	}
	e.noEvent(200 * time.Millisecond)
}

// A MESSAGE retransmitted by the UAC is published once; one repeated with a
// new branch (a new transaction) carries the same event id, for the
// component's de-duplication.
func TestInboundRetransmissionPublishedOnce(t *testing.T) {
	e := startEnv(t, withConfig(func(c *config.SIP) { c.DeliveryWait = config.Duration{Duration: 200 * time.Millisecond} }))
	raw := newRawUDP(t, "127.0.0.1")
	req := raw.request("MESSAGE", "retrans1", "retrans-call", "ftag1", "once please", nil)
	for i := 0; i < 3; i++ {
		raw.send(e.parleyAddr("udp"), req)
	}
	ev := e.mustEvent()
	if res := raw.mustRecv(); res.StatusCode != 202 {
		t.Fatalf("got %d", res.StatusCode)
	}
	e.noEvent(300 * time.Millisecond)

	raw.send(e.parleyAddr("udp"), raw.request("MESSAGE", "retrans2", "retrans-call", "ftag1", "once please", nil))
	ev2 := e.mustEvent()
	if ev2.ID != ev.ID {
		t.Errorf("same MESSAGE in a new transaction: event id %q, first was %q", ev2.ID, ev.ID)
	}
	raw.send(e.parleyAddr("udp"), raw.request("MESSAGE", "retrans3", "retrans-call", "ftag2", "another one", nil))
	if ev3 := e.mustEvent(); ev3.ID == ev.ID {
		t.Error("a different From tag gave the same event id")
	}
}

// A Publish failure is answered 503 with Retry-After: nothing was accepted.
func TestInboundBusDown(t *testing.T) {
	e := startEnv(t)
	e.bus.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := e.send(ctx, "udp", "sip:alice@xmpp.test", "text/plain", "bus down")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || header(res, "Retry-After") == "" {
		t.Fatalf("got %d Retry-After %q", res.StatusCode, header(res, "Retry-After"))
	}
}
