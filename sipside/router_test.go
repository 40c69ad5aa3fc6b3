package sipside

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/sipua"
)

// A From in a domain sipside serves is forged: 403, nothing published.
func TestTrustServedIdentity(t *testing.T) {
	e := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		opt  sipua.SendOption
	}{
		{"From", sipua.WithFrom("sip:mallory@xmpp.test")},
		{"From upper case", sipua.WithFrom("sip:mallory@XMPP.Test")},
		{"P-Asserted-Identity", sipua.WithHeader("P-Asserted-Identity", `"Tel" <tel:+4930123>, "Mallory, M." <sip:mallory@xmpp.test>`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.send(ctx, "udp", "sip:alice@xmpp.test", "text/plain", "I am alice's friend", tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 403 || res.Reason != "identity in a domain served by this gateway" || !hasToTag(res) {
				t.Fatalf("got %d %q", res.StatusCode, res.Reason)
			}
		})
	}
	e.noEvent(200 * time.Millisecond)
	if n := counter(t, e.srv.metrics.trustRejects.WithLabelValues(rejectServedIdentity)); n != 3 {
		t.Errorf("counted %v, want 3", n)
	}
}

// Only trusted proxies may send requests.
func TestTrustUntrustedSource(t *testing.T) {
	e := startEnv(t)
	other := sipua.Start(t, sipua.Options{User: "mallory", Domain: "sip.test", ListenAddr: "127.0.0.2:0", Logger: testLog()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tr := range []string{"udp", "tcp"} {
		_, res, err := other.SendMessage(ctx, "sip:alice@xmpp.test", "text/plain", "let me in",
			sipua.WithDestination(e.parleyAddr(tr)), sipua.WithTransport(tr))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 403 || res.Reason != "Forbidden" || !hasToTag(res) {
			t.Errorf("%s: got %d %q", tr, res.StatusCode, res.Reason)
		}
	}
	e.noEvent(200 * time.Millisecond)
	if n := counter(t, e.srv.metrics.trustRejects.WithLabelValues(rejectUntrustedSource)); n != 2 {
		t.Errorf("counted %v, want 2", n)
	}
	// The trusted proxy still gets through.
	if res, err := e.send(ctx, "udp", "sip:alice@xmpp.test", "text/plain", "hi"); err != nil || res.StatusCode != 202 {
		t.Fatalf("trusted: %v %v", res, err)
	}
}

func TestOptionsAndOtherMethods(t *testing.T) {
	e := startEnv(t)
	raw := newRawUDP(t, "127.0.0.1")
	raw.send(e.parleyAddr("udp"), raw.request("OPTIONS", "opt1", "opt-call", "t1", "", nil))
	res := raw.mustRecv()
	if res.StatusCode != 200 || header(res, "Allow") != allowed || !hasToTag(res) {
		t.Errorf("OPTIONS: %d Allow %q", res.StatusCode, header(res, "Allow"))
	}
	for _, m := range []string{"SUBSCRIBE", "PUBLISH", "FOOBAR"} {
		raw.send(e.parleyAddr("udp"), raw.request(m, "m"+m, "call-"+m, "t1", "", nil))
		res := raw.mustRecv()
		if res.StatusCode != 405 || header(res, "Allow") != allowed || !hasToTag(res) {
			t.Errorf("%s: %d Allow %q", m, res.StatusCode, header(res, "Allow"))
		}
	}
	raw.send(e.parleyAddr("udp"), raw.request("MESSAGE", "req1", "req-call", "t1", "x", []string{"Require: 100rel, foo"}))
	if res := raw.mustRecv(); res.StatusCode != 420 || header(res, "Unsupported") != "100rel, foo" {
		t.Errorf("Require: %d Unsupported %q", res.StatusCode, header(res, "Unsupported"))
	}
	raw.send(e.parleyAddr("udp"), strings.Replace(raw.request("MESSAGE", "dlg1", "dlg-call", "t1", "x", nil),
		"To: <sip:alice@xmpp.test>", "To: <sip:alice@xmpp.test>;tag=nodialog", 1))
	if res := raw.mustRecv(); res.StatusCode != 481 {
		t.Errorf("in-dialog MESSAGE: %d", res.StatusCode)
	}
	if n := counter(t, e.srv.metrics.requestsIn.WithLabelValues("other", "4xx")); n != 1 {
		t.Errorf("FOOBAR counted %v under other/4xx", n)
	}
}

// Requests missing what a response needs are answered 400.
func TestMalformed(t *testing.T) {
	e := startEnv(t)
	raw := newRawUDP(t, "127.0.0.1")
	for _, drop := range []string{"From", "To", "Call-ID", "CSeq"} {
		raw.send(e.parleyAddr("udp"), raw.request("MESSAGE", "bad"+drop, "bad-call-"+drop, "t1", "x", nil, drop))
		res := raw.mustRecv()
		if res.StatusCode != 400 {
			t.Errorf("without %s: %d %s", drop, res.StatusCode, res.Reason)
		}
	}
	// A From URI the mapper refuses (bad percent-encoding).
	raw.send(e.parleyAddr("udp"), strings.Replace(raw.request("MESSAGE", "badfrom", "bad-from", "t1", "x", nil),
		"<sip:bob@sip.test>", "<sip:b%zzob@sip.test>", 1))
	if res := raw.mustRecv(); res.StatusCode != 400 {
		t.Errorf("bad From: %d %s", res.StatusCode, res.Reason)
	}
	e.noEvent(200 * time.Millisecond)
}
