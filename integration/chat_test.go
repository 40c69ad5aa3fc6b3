package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/sipua"
	"github.com/parleygw/parley/integration/xmppclient"
)

func TestChatMemory(t *testing.T)     { testChat(t, false) }
func TestChatSplitRedis(t *testing.T) { testChat(t, true) }

func testChat(t *testing.T, split bool) {
	top := startTopology(t, split)
	alice := top.xmppUser("alice")
	carol := top.sipUser("carol", "udp")

	t.Run("xmpp to sip", func(t *testing.T) {
		body := "héllo Carol 👋 from XMPP — ünïcödé"
		if err := alice.Send("carol@sip.test", "m1", body); err != nil {
			t.Fatal(err)
		}
		got, err := carol.Wait(wait(t), func(m sipua.Message) bool { return m.Body == body })
		if err != nil {
			t.Fatalf("carol did not get the message: %v\nreceived: %+v", err, carol.Messages())
		}
		if !strings.HasPrefix(got.ContentType, "text/plain") {
			t.Errorf("Content-Type %q", got.ContentType)
		}
		if !strings.Contains(got.From, "alice@xmpp.test") {
			t.Errorf("From %q does not name alice@xmpp.test", got.From)
		}
	})

	t.Run("sip to xmpp", func(t *testing.T) {
		body := "hi Alice 🎉 from SIP — ça va?"
		code, _, err := carol.SendMessage(wait(t), "sip:alice@xmpp.test", "text/plain;charset=UTF-8", body)
		if err != nil || code != 200 {
			t.Fatalf("MESSAGE to alice: %d %v", code, err)
		}
		got, err := alice.WaitBody(wait(t), body)
		if err != nil {
			t.Fatalf("alice did not get it: %v", err)
		}
		if bare(got.From) != "carol@sip.test" {
			t.Errorf("from %q, want carol@sip.test", got.From)
		}
	})

	t.Run("unknown sip user gives xmpp error with the id", func(t *testing.T) {
		if err := alice.Send("nobody@sip.test", "lost-1", "anyone there?"); err != nil {
			t.Fatal(err)
		}
		got, err := alice.Wait(wait(t), func(m xmppclient.Message) bool { return m.Type == "error" && m.ID == "lost-1" })
		if err != nil {
			t.Fatalf("no error stanza: %v\nall: %+v", err, alice.All())
		}
		if got.Error == nil || got.Error.Condition != "item-not-found" {
			t.Errorf("error %+v, want item-not-found (Kamailio's 404)", got.Error)
		}
		if bare(got.From) != "nobody@sip.test" {
			t.Errorf("error from %q", got.From)
		}
	})

	t.Run("xmpp error answers the MESSAGE per RFC 7247", func(t *testing.T) {
		// Prosody refuses a message to a user that does not exist with
		// service-unavailable; Table E1 maps it to 503. Kamailio, as RFC
		// 3261 §16.7 requires of a proxy, passes a 503 on as 500.
		code, resp, err := carol.SendMessage(wait(t), "sip:nobody@xmpp.test", "text/plain", "hello?")
		if err != nil {
			t.Fatal(err)
		}
		if code != 500 {
			t.Fatalf("carol got %d %v, want 500 (Kamailio's rewrite of 503)", code, resp)
		}
		want := fmt.Sprintf("REPLY 503 Service Unavailable for MESSAGE from %s (udp) cid=%s", top.sipAddr, resp.CallID().Value())
		ctx := wait(t)
		for !strings.Contains(top.kamailio.Output(), want) {
			if ctx.Err() != nil {
				t.Fatalf("Kamailio never logged %q", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("spoofed from in a served domain is refused", func(t *testing.T) {
		code, _, err := carol.SendMessage(wait(t), "sip:alice@xmpp.test", "text/plain", "I am bob, honest",
			sipua.WithFrom("sip:mallory@xmpp.test"))
		if err != nil {
			t.Fatal(err)
		}
		if code != 403 {
			t.Fatalf("got %d, want 403", code)
		}
	})

	t.Run("untrusted source is refused", func(t *testing.T) {
		rogue := sipua.Start(t, sipua.Options{User: "rogue", Domain: "sip.test", ListenAddr: "127.0.0.2:0", Proxy: top.kamailio.Addr})
		code, _, err := rogue.SendMessage(wait(t), "sip:alice@xmpp.test", "text/plain", "let me in",
			sipua.WithDestination(top.sipAddr))
		if err != nil {
			t.Fatal(err)
		}
		if code != 403 {
			t.Fatalf("got %d, want 403", code)
		}
	})

	t.Run("large message goes over TCP", func(t *testing.T) {
		body := strings.Repeat("twenty kilobytes of chat ✓ ", 800)[:20000]
		body = strings.ToValidUTF8(body, "")
		if err := alice.Send("carol@sip.test", "big-1", body); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.Wait(wait(t), func(m sipua.Message) bool { return m.Body == body }); err != nil {
			t.Fatalf("carol did not get the 20 KB message: %v", err)
		}
		reqs, err := top.kamailio.WaitRequest(wait(t), func(r harness.KamailioRequest) bool {
			return r.Method == "MESSAGE" && r.Len > 20000
		})
		if err != nil {
			t.Fatal(err)
		}
		if reqs.Proto != "tcp" {
			t.Fatalf("Parley sent a %d-byte MESSAGE over %s", reqs.Len, reqs.Proto)
		}
		for _, r := range top.kamailio.Requests() {
			if r.Method == "MESSAGE" && r.Len > 1300 && r.Proto == "udp" {
				t.Errorf("a %d-byte MESSAGE arrived over UDP from %s", r.Len, r.Source)
			}
		}
	})
}

// TestSIPRoleKilledLosesNothing kills `parley sip` with SIGKILL while 200
// messages flow from XMPP to SIP, restarts it, and checks every message
// arrives exactly once.
func TestSIPRoleKilledLosesNothing(t *testing.T) {
	top := startTopology(t, true)
	alice := top.xmppUser("alice")
	carol := top.sipUser("carol", "udp")
	const n = 200

	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := alice.Send("carol@sip.test", fmt.Sprintf("k%d", i), fmt.Sprintf("msg %03d", i)); err != nil {
				sent <- err
				return
			}
			if i%20 == 0 {
				time.Sleep(20 * time.Millisecond) // keep traffic flowing across the kill
			}
		}
		sent <- nil
	}()

	ctx := wait(t)
	// Kill once some messages got through, while others are in flight.
	for carol.Count() < 30 {
		if ctx.Err() != nil {
			t.Fatalf("only %d messages arrived before the kill", carol.Count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	sip := top.parley("sip")
	sip.Proc.Kill()
	killedAt := carol.Count()
	if err := harness.WaitPortClosed(sip.Opts.SIPListen, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := sip.Start(); err != nil {
		t.Fatalf("restart parley sip: %v", err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for carol.Count() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would show up now
	seen := map[string]int{}
	for _, m := range carol.Messages() {
		seen[m.Body]++
	}
	var missing, twice []string
	for i := 0; i < n; i++ {
		b := fmt.Sprintf("msg %03d", i)
		switch seen[b] {
		case 0:
			missing = append(missing, b)
		case 1:
		default:
			twice = append(twice, b)
		}
	}
	t.Logf("%d arrived before the kill, %d in all", killedAt, carol.Count())
	if len(missing) > 0 || len(twice) > 0 {
		t.Fatalf("missing %d %v; delivered more than once %d %v", len(missing), missing, len(twice), twice)
	}
}

// TestProsodyRestart restarts the XMPP server under the component: it
// reconnects by itself and chat flows again both ways.
func TestProsodyRestart(t *testing.T) {
	top := startTopology(t, false)
	carol := top.sipUser("carol", "udp")
	if err := top.prosody.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := top.parley("all").WaitReady(30 * time.Second); err != nil {
		t.Fatalf("component did not reconnect: %v", err)
	}
	alice := top.xmppUser("alice")
	if err := alice.Send("carol@sip.test", "after-1", "after the restart"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Wait(wait(t), func(m sipua.Message) bool { return m.Body == "after the restart" }); err != nil {
		t.Fatalf("xmpp→sip after restart: %v", err)
	}
	code, _, err := carol.SendMessage(wait(t), "sip:alice@xmpp.test", "text/plain", "back again")
	if err != nil || code != 200 {
		t.Fatalf("sip→xmpp after restart: %d %v", code, err)
	}
	if _, err := alice.WaitBody(wait(t), "back again"); err != nil {
		t.Fatal(err)
	}
}

func bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}
