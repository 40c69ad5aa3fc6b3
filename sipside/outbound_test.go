package sipside

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/sipua"
	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

var (
	alice = address.Address{User: "alice", Domain: "xmpp.test", Resource: "phone"}
	bob   = address.Address{User: "bob", Domain: "sip.test"}
)

func xmppMessage(id, body string) model.Message {
	return model.Message{ID: id, ConvID: model.ConversationID(alice, bob), From: alice, To: bob, Type: model.Chat, Body: body}
}

// peerGot waits for the peer (the proxy) to receive the MESSAGE with callID.
func peerGot(t *testing.T, peer *sipua.UA, callID string) sipua.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := peer.Wait(ctx, func(m sipua.Message) bool { return m.CallID == callID })
	if err != nil {
		t.Fatalf("peer got no MESSAGE with Call-ID %s: %v", callID, err)
	}
	return m
}

func TestOutboundSmallOverUDP(t *testing.T) {
	e := startEnv(t)
	msg := xmppMessage("x-1", "Hallo Bob 👋 — ça va?")
	msg.Subject = "line one\nline two"
	msg.Lang = "de"
	e.publishToSIP("ev-small", msg)

	m := peerGot(t, e.peer, outboundCallID("ev-small"))
	if m.Body != msg.Body || m.Transport != "udp" {
		t.Errorf("body %q over %s", m.Body, m.Transport)
	}
	if m.RequestURI != "sip:bob@sip.test" || m.To != "sip:bob@sip.test" || !strings.HasPrefix(m.From, "sip:alice@xmpp.test") {
		t.Errorf("R-URI %s To %s From %s", m.RequestURI, m.To, m.From)
	}
	req := m.Request
	if tag, _ := req.From().Params.Get("tag"); len(tag) < 8 {
		t.Errorf("From tag %q", tag)
	}
	if c := req.CSeq(); c.SeqNo != 1 || c.MethodName != "MESSAGE" {
		t.Errorf("CSeq %s", c.Value())
	}
	if mf := req.MaxForwards(); mf == nil || mf.Val() != 70 {
		t.Errorf("Max-Forwards %v", mf)
	}
	if m.ContentType != "text/plain;charset=UTF-8" || m.Header("Subject") != "line one line two" || m.Header("Content-Language") != "de" {
		t.Errorf("Content-Type %q Subject %q Content-Language %q", m.ContentType, m.Header("Subject"), m.Header("Content-Language"))
	}
	if via := req.Via(); via.Transport != "UDP" || !strings.HasPrefix(via.Host, "127.0.0.1") {
		t.Errorf("Via %s", via.Value())
	}
	// Sent from the UDP listener: one address:port for both directions.
	if m.Source != e.parleyAddr("udp") {
		t.Errorf("source %s, want the listener %s", m.Source, e.parleyAddr("udp"))
	}
	if n := len(m.Raw); n > udpLimit {
		t.Errorf("%d bytes over UDP", n)
	}
	waitCounter(t, func() float64 { return counter(t, e.srv.metrics.messagesOut.WithLabelValues("udp", "2xx")) }, 1)
	e.noEvent(200 * time.Millisecond)
}

// A MESSAGE over 1300 bytes never goes over UDP: a 20 KB body goes over
// TCP, Via included.
func TestOutboundLargeOverTCP(t *testing.T) {
	e := startEnv(t)
	body := strings.Repeat("Zwanzig Kilobyte 🚀 ", 1100)[:20000]
	body = strings.ToValidUTF8(body, "")
	e.publishToSIP("ev-large", xmppMessage("x-2", body))
	m := peerGot(t, e.peer, outboundCallID("ev-large"))
	if m.Body != body {
		t.Errorf("body of %d bytes, want %d", len(m.Body), len(body))
	}
	if m.Transport != "tcp" {
		t.Errorf("peer got it over %s", m.Transport)
	}
	if via := m.Request.Via(); via.Transport != "TCP" {
		t.Errorf("Via %s", via.Value())
	}
	if cl := m.Request.ContentLength(); cl == nil || int(*cl) != len(body) {
		t.Errorf("Content-Length %v", cl)
	}
	waitCounter(t, func() float64 { return counter(t, e.srv.metrics.messagesOut.WithLabelValues("tcp", "2xx")) }, 1)
}

// A SIP error response becomes a MessageError per Table E2, echoing the id.
func TestOutboundErrorResponse(t *testing.T) {
	e := startEnv(t)
	for _, tc := range []struct {
		status int
		cond   string
	}{
		{404, model.ItemNotFound},
		{486, model.RecipientUnavailable},
		{408, model.RemoteServerTimeout},
		{603, model.ServiceUnavailable},
	} {
		e.peer.SetAnswer(tc.status)
		id := "x-err-" + tc.cond
		e.publishToSIP("ev-"+id, xmppMessage(id, "will fail"))
		ev := e.mustEvent()
		if ev.Type != model.EventMessageError || ev.ID != "se:ev-"+id {
			t.Fatalf("event %s of type %s", ev.ID, ev.Type)
		}
		me := decode[model.MessageError](t, ev)
		if me.ID != id || me.From != bob || me.To != alice || me.ConvID != model.ConversationID(alice, bob) || ev.Key != me.ConvID {
			t.Errorf("%d: %+v", tc.status, me)
		}
		if me.Err.Condition != tc.cond || me.Err.SIPStatus != tc.status {
			t.Errorf("%d: error %+v, want %s", tc.status, me.Err, tc.cond)
		}
	}
	e.noEvent(200 * time.Millisecond)
	if got := e.peer.Count(); got != 4 {
		t.Errorf("peer got %d MESSAGEs, want 4 (no retries on final responses)", got)
	}
}

// No final response (Timer F) is remote-server-timeout, without retry.
func TestOutboundNoAnswer(t *testing.T) {
	e := startEnv(t)
	e.peer.SetAnswer(0)
	start := time.Now()
	e.publishToSIP("ev-silent", xmppMessage("x-silent", "hello?"))
	ev, ok := e.nextEvent(15 * time.Second)
	if !ok {
		t.Fatal("no MessageError")
	}
	me := decode[model.MessageError](t, ev)
	if me.Err.Condition != model.RemoteServerTimeout || me.ID != "x-silent" {
		t.Errorf("%+v", me)
	}
	if el := time.Since(start); el < 64*50*time.Millisecond {
		t.Errorf("gave up after %v, before Timer F", el)
	}
	// What the peer saw were retransmissions of one transaction (sipua
	// records each, since it leaves them unanswered): one branch.
	msgs := e.peer.Messages()
	if len(msgs) < 2 {
		t.Errorf("peer got %d MESSAGEs, want retransmissions", len(msgs))
	}
	for _, m := range msgs {
		if b1, b2 := branch(m), branch(msgs[0]); b1 != b2 || b1 == "" {
			t.Errorf("branches %q and %q: not one transaction", b1, b2)
		}
	}
}

// An unreachable proxy is retried through the bus, a bounded number of
// times, then reported as remote-server-timeout.
func TestOutboundDeadProxy(t *testing.T) {
	dead := freeAddr(t)
	e := startEnv(t, withConfig(func(c *config.SIP) { c.OutboundProxy = dead }),
		withServer(func(s *Server) { s.maxAttempts = 3 }))
	// 20 KB goes over TCP: connection refused is a transport failure.
	e.publishToSIP("ev-dead", xmppMessage("x-dead", strings.Repeat("x", 20000)))
	ev := e.mustEvent()
	me := decode[model.MessageError](t, ev)
	if me.Err.Condition != model.RemoteServerTimeout || me.ID != "x-dead" || me.To != alice {
		t.Errorf("%+v", me)
	}
	if n := counter(t, e.srv.metrics.messagesOut.WithLabelValues("tcp", outTransport)); n != 2 {
		t.Errorf("retried %v times, want 2", n)
	}
	if n := counter(t, e.srv.metrics.messagesOut.WithLabelValues("tcp", outGaveUp)); n != 1 {
		t.Errorf("gave up %v times, want 1", n)
	}
	rec, err := e.srv.records.load(context.Background(), "ev-dead")
	if err != nil || rec.Attempts != 3 || rec.Final == nil {
		t.Errorf("record %+v, %v", rec, err)
	}
	e.noEvent(300 * time.Millisecond)
}

// The proxy coming back within the attempts gets the message delivered.
func TestOutboundProxyComesBack(t *testing.T) {
	e := startEnv(t, withServer(func(s *Server) {
		s.maxAttempts = 50
		s.retryBase, s.retryMax = 20*time.Millisecond, 20*time.Millisecond
	}))
	peerAddr := e.peer.Addr()
	e.peer.Close()
	e.publishToSIP("ev-back", xmppMessage("x-back", strings.Repeat("y", 5000)))
	waitCounter(t, func() float64 { return counter(t, e.srv.metrics.messagesOut.WithLabelValues("tcp", outTransport)) }, 2)
	peer := sipua.Start(t, sipua.Options{User: "bob", Domain: "sip.test", ListenAddr: peerAddr, Logger: testLog()})
	m := peerGot(t, peer, outboundCallID("ev-back"))
	if len(m.Body) != 5000 {
		t.Errorf("body of %d bytes", len(m.Body))
	}
	e.noEvent(200 * time.Millisecond)
}

// A redelivered event (same id) is not sent twice.
func TestOutboundDuplicateEvent(t *testing.T) {
	e := startEnv(t)
	msg := xmppMessage("x-dup", "only once")
	e.publishToSIP("ev-dup", msg)
	peerGot(t, e.peer, outboundCallID("ev-dup"))
	waitCounter(t, func() float64 { return counter(t, e.srv.metrics.messagesOut.WithLabelValues("udp", "2xx")) }, 1)
	e.publishToSIP("ev-dup", msg)
	e.publishToSIP("ev-dup-2", xmppMessage("x-dup-2", "a new one"))
	peerGot(t, e.peer, outboundCallID("ev-dup-2"))
	if n := e.peer.Count(); n != 2 {
		t.Errorf("peer got %d MESSAGEs, want 2", n)
	}
}

// A failure decided before is reported again, never sent again.
func TestOutboundFailureReportedOnRedelivery(t *testing.T) {
	e := startEnv(t)
	final := model.FromSIP(404, "Not Found")
	b, _ := json.Marshal(deliveryRecord{Attempts: 1, Final: &final})
	if err := e.bus.Put(context.Background(), recordKey("ev-again"), b, time.Minute); err != nil {
		t.Fatal(err)
	}
	e.publishToSIP("ev-again", xmppMessage("x-again", "sent before"))
	me := decode[model.MessageError](t, e.mustEvent())
	if me.Err.Condition != model.ItemNotFound || me.ID != "x-again" {
		t.Errorf("%+v", me)
	}
	if n := e.peer.Count(); n != 0 {
		t.Errorf("peer got %d MESSAGEs", n)
	}
}

// An XMPP bounce of a message from SIP is logged and counted.
func TestBounceCounted(t *testing.T) {
	e := startEnv(t)
	data, _ := json.Marshal(model.MessageError{ID: "sip-1", ConvID: "c", From: alice, To: bob, Err: model.FromXMPP(model.ServiceUnavailable, "")})
	if err := e.bus.Publish(context.Background(), model.TopicToSIP, store.Event{ID: "b1", Key: "c", Type: model.EventMessageError, Data: data}); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, func() float64 { return counter(t, e.srv.metrics.bounces) }, 1)
	if n := e.peer.Count(); n != 0 {
		t.Errorf("peer got %d MESSAGEs", n)
	}
}

func waitCounter(t *testing.T, get func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := get()
		if got >= want {
			if got > want {
				t.Errorf("counter %v, want %v", got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func branch(m sipua.Message) string {
	b, _ := m.Request.Via().Params.Get("branch")
	return b
}
