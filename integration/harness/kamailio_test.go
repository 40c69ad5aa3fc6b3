package harness_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/sipua"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func registered(t *testing.T, k *harness.Kamailio, user, domain, transport string) *sipua.UA {
	t.Helper()
	ua := sipua.Start(t, sipua.Options{User: user, Domain: domain, Proxy: k.Addr, Transport: transport})
	if err := ua.Register(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return ua
}

func TestKamailioMessageBetweenUAs(t *testing.T) {
	t.Parallel()
	k := harness.StartKamailio(t, harness.KamailioOptions{Aliases: []string{"lync.test"}})
	carol := registered(t, k, "carol", "sip.test", "udp")
	dave := registered(t, k, "dave", "sip.test", "tcp")
	erin := registered(t, k, "erin", "lync.test", "udp")
	ctx := testCtx(t)

	cases := []struct {
		name          string
		from          *sipua.UA
		to            *sipua.UA
		via           string // transport from the sender to Kamailio
		wantTransport string // transport from Kamailio to the receiver
	}{
		{"udp to udp", carol, erin, "udp", "udp"},
		{"udp to tcp", carol, dave, "udp", "tcp"},
		{"tcp to udp", dave, carol, "tcp", "udp"}, // Kamailio converts
		{"tcp to tcp", carol, dave, "tcp", "tcp"},
	}
	for i, c := range cases {
		body := c.name + ": héllo 👋"
		code, _, err := c.from.SendMessage(ctx, c.to.AOR(), "text/plain;charset=UTF-8", body, sipua.WithTransport(c.via))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if code != 200 {
			t.Fatalf("%s: got %d, want 200", c.name, code)
		}
		m, err := c.to.Wait(ctx, func(m sipua.Message) bool { return m.Body == body })
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m.Transport != c.wantTransport || m.ContentType != "text/plain;charset=UTF-8" || m.From != c.from.AOR() {
			t.Errorf("%s: got transport %s content-type %q from %s, want %s text/plain from %s",
				c.name, m.Transport, m.ContentType, m.From, c.wantTransport, c.from.AOR())
		}
		r, err := k.WaitRequest(ctx, func(r harness.KamailioRequest) bool { return r.Method == "MESSAGE" && r.CallID == m.CallID })
		if err != nil {
			t.Fatalf("case %d %s: %v", i, c.name, err)
		}
		if r.Proto != c.via || (c.via == "udp" && r.Source != c.from.Addr()) {
			t.Errorf("%s: Kamailio logged %+v, want proto %s from %s", c.name, r, c.via, c.from.Addr())
		}
	}
}

func TestKamailioNoOptionTagRejection(t *testing.T) {
	t.Parallel()
	k := harness.StartKamailio(t, harness.KamailioOptions{})
	carol := registered(t, k, "carol", "sip.test", "udp")
	dave := registered(t, k, "dave", "sip.test", "udp")
	code, _, err := carol.SendMessage(testCtx(t), dave.AOR(), "text/plain", "tags",
		sipua.WithHeader("Require", "x-unknown-tag"), sipua.WithHeader("Proxy-Require", "x-unknown-proxy-tag"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 {
		t.Fatalf("MESSAGE with unknown option tags: got %d, want 200 (sipua answers 200)", code)
	}
}

func TestKamailioUnregistered404(t *testing.T) {
	t.Parallel()
	k := harness.StartKamailio(t, harness.KamailioOptions{Aliases: []string{"lync.test"}})
	carol := registered(t, k, "carol", "sip.test", "udp")
	ctx := testCtx(t)
	for _, to := range []string{
		"sip:nobody@sip.test",
		"sip:carol@lync.test", // registrations are per domain
		"sip:someone@elsewhere.test",
	} {
		for _, tr := range []string{"udp", "tcp"} {
			code, res, err := carol.SendMessage(ctx, to, "text/plain", "anyone?", sipua.WithTransport(tr))
			if err != nil {
				t.Fatal(err)
			}
			if code != 404 {
				t.Errorf("MESSAGE to %s over %s: got %d %s, want 404", to, tr, code, res.Reason)
			}
		}
	}
	// After unregistering, carol is gone too.
	if err := carol.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, err := carol.SendMessage(ctx, carol.AOR(), "text/plain", "me?"); err != nil || code != 404 {
		t.Errorf("MESSAGE to unregistered carol: %d, %v; want 404", code, err)
	}
	if carol.Count() != 0 {
		t.Errorf("carol received %d messages, want 0", carol.Count())
	}
}

func TestKamailioForwardsToParley(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"udp", "tcp", "follow"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			parley := sipua.Start(t, sipua.Options{User: "parley", Domain: "xmpp.test"})
			k := harness.StartKamailio(t, harness.KamailioOptions{
				XMPPDomains:     []string{"xmpp.test", "conference.xmpp.test"},
				ParleyAddr:      parley.Addr(),
				ParleyTransport: policy,
			})
			carol := registered(t, k, "carol", "sip.test", "udp")
			ctx := testCtx(t)
			big := strings.Repeat("x", 2000)
			cases := []struct {
				to, via, body, want string
			}{
				{"sip:alice@xmpp.test", "udp", "small over udp", map[string]string{"udp": "udp", "tcp": "tcp", "follow": "udp"}[policy]},
				{"sip:alice@xmpp.test", "tcp", "small over tcp", map[string]string{"udp": "udp", "tcp": "tcp", "follow": "tcp"}[policy]},
				{"sip:room@conference.xmpp.test", "tcp", big, "tcp"}, // > 1300 bytes never over UDP
			}
			for _, c := range cases {
				code, _, err := carol.SendMessage(ctx, c.to, "text/plain", c.body, sipua.WithTransport(c.via))
				if err != nil {
					t.Fatal(err)
				}
				if code != 200 {
					t.Fatalf("MESSAGE to %s: %d, want 200", c.to, code)
				}
				m, err := parley.Wait(ctx, func(m sipua.Message) bool { return m.Body == c.body })
				if err != nil {
					t.Fatal(err)
				}
				if m.Transport != c.want || m.RequestURI != c.to {
					t.Errorf("%s via %s (%d bytes): Parley got R-URI %s over %s, want %s over %s",
						c.to, c.via, len(c.body), m.RequestURI, m.Transport, c.to, c.want)
				}
				if _, err := k.WaitSend(ctx, func(s harness.KamailioSend) bool {
					return s.CallID == m.CallID && s.Dest == parley.Addr() && s.Proto == c.want
				}); err != nil {
					t.Errorf("no SEND line to %s (%s) for Call-ID %s: %v %+v", parley.Addr(), c.want, m.CallID, err, k.Sends())
				}
			}
			// Parley's answer reaches the sender.
			parley.SetAnswer(403)
			if code, _, err := carol.SendMessage(ctx, "sip:alice@xmpp.test", "text/plain", "no"); err != nil || code != 403 {
				t.Errorf("MESSAGE answered 403 by Parley: got %d, %v", code, err)
			}
		})
	}
}

func TestKamailioRestart(t *testing.T) {
	t.Parallel()
	k := harness.StartKamailio(t, harness.KamailioOptions{})
	carol := registered(t, k, "carol", "sip.test", "udp")
	dave := registered(t, k, "dave", "sip.test", "udp")
	if err := k.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	// Registrations live in memory: gone after the restart.
	if code, _, err := carol.SendMessage(ctx, dave.AOR(), "text/plain", "lost"); err != nil || code != 404 {
		t.Fatalf("after restart: got %d, %v; want 404", code, err)
	}
	if err := dave.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, err := carol.SendMessage(ctx, dave.AOR(), "text/plain", "back"); err != nil || code != 200 {
		t.Fatalf("after re-register: got %d, %v; want 200", code, err)
	}
	// Output spans restarts.
	for n := 0; n != 3; n = strings.Count(k.Output(), "REQ REGISTER") {
		if ctx.Err() != nil {
			t.Fatalf("Output has %d REGISTER lines across the restart, want 3", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testTimeout bounds each wait in these tests. They normally take well
// under a second; the margin is for a machine loaded by benchmarks.
const testTimeout = 15 * time.Second
