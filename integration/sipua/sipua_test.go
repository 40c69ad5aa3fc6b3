package sipua_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/sipua"
)

// Two UAs talk directly (no proxy): the sender binds 127.0.0.2, as a test
// sending from an untrusted loopback address to Parley would.
func TestDirectFromOtherLoopbackAddress(t *testing.T) {
	t.Parallel()
	recv := sipua.Start(t, sipua.Options{User: "parley", Domain: "xmpp.test"})
	send := sipua.Start(t, sipua.Options{User: "mallory", Domain: "evil.test", ListenAddr: "127.0.0.2:0"})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, tr := range []string{"udp", "tcp"} {
		body := "ünïcode 🎉 over " + tr
		code, _, err := send.SendMessage(ctx, "sip:alice@xmpp.test", "text/plain", body,
			sipua.WithDestination(recv.Addr()), sipua.WithTransport(tr), sipua.WithCallID("cid-"+tr),
			sipua.WithHeader("X-Test", "yes"))
		if err != nil {
			t.Fatal(err)
		}
		if code != 200 {
			t.Fatalf("%s: got %d, want 200", tr, code)
		}
		m, err := recv.Wait(ctx, func(m sipua.Message) bool { return m.CallID == "cid-"+tr })
		if err != nil {
			t.Fatal(err)
		}
		if m.Body != body || m.Transport != tr || !strings.HasPrefix(m.Source, "127.0.0.2:") ||
			m.From != "sip:mallory@evil.test" || m.To != "sip:alice@xmpp.test" || m.Header("X-Test") != "yes" {
			t.Errorf("%s: got %+v", tr, m)
		}
		if tr == "udp" && m.Source != send.Addr() {
			t.Errorf("udp source %s, want the sender's listen address %s", m.Source, send.Addr())
		}
	}

	recv.SetAnswer(486)
	if code, res, err := send.SendMessage(ctx, "sip:alice@xmpp.test", "text/plain", "busy?", sipua.WithDestination(recv.Addr())); err != nil || code != 486 || res.Reason != "Busy Here" {
		t.Fatalf("SetAnswer(486): got %d, %v", code, err)
	}
	recv.SetAnswer(0)
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if code, _, err := send.SendMessage(short, "sip:alice@xmpp.test", "text/plain", "silence", sipua.WithDestination(recv.Addr())); err == nil {
		t.Fatalf("SetAnswer(0): got %d, want a timeout", code)
	}
	if n := recv.Count(); n != 4 {
		t.Errorf("received %d, want 4", n)
	}
}

func TestRejectsDNSNames(t *testing.T) {
	t.Parallel()
	if _, err := sipua.New(context.Background(), sipua.Options{User: "a", Domain: "sip.test", Proxy: "kamailio.test:5060"}); err == nil {
		t.Fatal("a proxy host name was accepted")
	}
	ua := sipua.Start(t, sipua.Options{User: "a", Domain: "sip.test"})
	if _, _, err := ua.SendMessage(context.Background(), "sip:b@sip.test", "text/plain", "x", sipua.WithDestination("sip.test:5060")); err == nil {
		t.Fatal("a destination host name was accepted")
	}
}

// testTimeout bounds each wait; generous for a loaded machine.
const testTimeout = 15 * time.Second
