package lyncemu_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/lyncemu"
)

// testTimeout bounds each wait; the exchanges take milliseconds.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func tlsConf(t *testing.T, ca *harness.TestCA, name string, hosts ...string) lyncemu.Options {
	t.Helper()
	leaf := ca.MustIssue(t, name, append([]string{"127.0.0.1"}, hosts...)...)
	conf, err := lyncemu.LoadTLS(leaf.CertFile, leaf.KeyFile, leaf.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return lyncemu.Options{TLS: conf}
}

// pair is two emulated domains federated directly over mutual TLS:
// lync.test (dave, erin) and xmpp.test (alice, bob), each the other's proxy.
func pair(t *testing.T, bl, bx lyncemu.Behaviour) (lync, xmpp *lyncemu.Emulator) {
	t.Helper()
	ca := harness.StartTestCA(t)
	o := tlsConf(t, ca, "lync", "lync.test")
	o.Behaviour = bl
	lync = lyncemu.Start(t, o)
	o = tlsConf(t, ca, "xmpp", "xmpp.test")
	o.Domain, o.Users, o.Behaviour = "xmpp.test", []string{"alice", "bob"}, bx
	xmpp = lyncemu.Start(t, o)
	if err := lync.SetProxy(xmpp.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := xmpp.SetProxy(lync.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, e := range []*lyncemu.Emulator{lync, xmpp} {
			if v := e.Violations(); len(v) > 0 {
				t.Errorf("%s: dialect violations: %q", e.Domain(), v)
			}
		}
	})
	return lync, xmpp
}

func TestSessionDirect(t *testing.T) {
	t.Parallel()
	lync, xmpp := pair(t, lyncemu.Behaviour{}, lyncemu.Behaviour{})
	ctx := testCtx(t)
	chat, err := lync.User("dave").Chat(ctx, "sip:alice@xmpp.test", lyncemu.First("hello Alice"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := xmpp.Wait(ctx, lyncemu.Is(lyncemu.EventInvite))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("INVITE as received:\n%s", inv.Raw)
	first, err := xmpp.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "hello Alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Embedded || first.DialogID == "" {
		t.Errorf("first message %+v", first)
	}
	if err := chat.Send(ctx, "second"); err != nil {
		t.Fatal(err)
	}
	if _, err := xmpp.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "second"}); err != nil {
		t.Fatal(err)
	}
	if err := chat.Typing(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := xmpp.Wait(ctx, lyncemu.Want{Type: lyncemu.EventTyping, State: "type"}); err != nil {
		t.Fatal(err)
	}
	reply := xmpp.User("alice").Session("sip:dave@lync.test")
	if reply == nil {
		t.Fatal("alice has no session with dave")
	}
	if err := reply.SendHTML(ctx, "<b>hi</b> Dave"); err != nil {
		t.Fatal(err)
	}
	m, err := lync.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, ContentType: "text/html"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MESSAGE as received:\n%s", m.Raw)
	if err := chat.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := xmpp.Wait(ctx, lyncemu.Is(lyncemu.EventBye)); err != nil {
		t.Fatal(err)
	}
}

// direct is an emulator that also listens on UDP, and a plain SIP UA that
// talks to it without a proxy.
func direct(t *testing.T, b lyncemu.Behaviour) (*lyncemu.Emulator, *plainUA) {
	t.Helper()
	ca := harness.StartTestCA(t)
	o := tlsConf(t, ca, "lync", "lync.test")
	o.PlainAddr, o.Behaviour = "127.0.0.1:0", b
	emu := lyncemu.Start(t, o)
	return emu, startPlainUA(t, "carol", "sip.test", emu.PlainAddr())
}

func TestOutOfDialogAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		behaviour lyncemu.Behaviour
		to        string
		want      int
		event     lyncemu.EventType
	}{
		{"pager mode is refused by default", lyncemu.Behaviour{}, "sip:dave@lync.test", 488, lyncemu.EventPagerRejected},
		{"pager mode with another code", lyncemu.Behaviour{PagerRejectCode: 403}, "sip:dave@lync.test", 403, lyncemu.EventPagerRejected},
		{"pager mode accepted", lyncemu.Behaviour{AcceptPager: true}, "sip:erin@lync.test", 200, lyncemu.EventPager},
		{"policy word in a pager message", lyncemu.Behaviour{AcceptPager: true, PolicyWord: "BODY"}, "sip:erin@lync.test", 606, lyncemu.EventPolicyRejected},
		{"unknown user", lyncemu.Behaviour{}, "sip:nobody@lync.test", 404, lyncemu.EventUnsupported},
		{"other domain", lyncemu.Behaviour{}, "sip:dave@elsewhere.test", 404, lyncemu.EventUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			emu, carol := direct(t, c.behaviour)
			ctx := testCtx(t)
			res, err := carol.message(ctx, c.to, "the body")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != c.want {
				t.Errorf("got %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			ev, err := emu.Wait(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != c.event || ev.Status != c.want || ev.Body != "the body" || ev.Peer != "sip:carol@sip.test" {
				t.Errorf("event %+v, want %s with status %d", ev, c.event, c.want)
			}
			if c.want == 606 && !strings.HasPrefix(res.GetHeader("Warning").Value(), "309 ") {
				t.Errorf("606 without Warning: 309: %v", res.GetHeader("Warning"))
			}
		})
	}
}

// The emulator catches a peer that breaks Lync's rules: each case must
// leave a violation, so a gateway test that checks Violations() fails.
func TestOptions(t *testing.T) {
	t.Parallel()
	emu, carol := direct(t, lyncemu.Behaviour{})
	ctx := testCtx(t)
	for _, c := range []struct {
		to     string
		status int
		sdp    bool
	}{
		{"sip:lync.test", 200, false},
		{"sip:erin@lync.test", 200, true},
		{"sip:nobody@lync.test", 404, false},
	} {
		res, err := carol.outOfDialog(ctx, sip.OPTIONS, c.to, "")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != c.status {
			t.Errorf("OPTIONS %s: %d, want %d", c.to, res.StatusCode, c.status)
			continue
		}
		if media, _ := sdpMessageLine(string(res.Body())); (media == "message") != c.sdp {
			t.Errorf("OPTIONS %s: SDP %q", c.to, res.Body())
		}
		if c.status == 200 && !strings.Contains(res.GetHeader("Allow").Value(), "BENOTIFY") {
			t.Errorf("OPTIONS %s: Allow %q", c.to, res.GetHeader("Allow").Value())
		}
	}
	if _, err := emu.Wait(ctx, lyncemu.Want{Type: lyncemu.EventOptions, User: "erin"}); err != nil {
		t.Fatal(err)
	}
}

func TestViolationsAreCaught(t *testing.T) {
	t.Parallel()
	emu, carol := direct(t, lyncemu.Behaviour{AcceptPager: true})
	ctx := testCtx(t)
	check := func(what, want string) {
		t.Helper()
		for _, v := range emu.Violations() {
			if strings.Contains(v, want) {
				return
			}
		}
		t.Errorf("%s: no violation mentioning %q in %q", what, want, emu.Violations())
	}

	if _, err := carol.message(ctx, "sip:dave@lync.test", "x", sip.NewHeader("ms-edge-proxy-message-trust", "ms-source-type=AuthorizedServer")); err != nil {
		t.Fatal(err)
	}
	ev, err := emu.Wait(ctx, lyncemu.Is(lyncemu.EventPager))
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.Header("ms-edge-proxy-message-trust"); !strings.Contains(got, "DirectPartner") {
		t.Errorf("the Edge kept the partner's trust header: %q", got)
	}
	check("trust header from the partner", "ms-edge-proxy-message-trust")

	const conv = "AdKjt1Xy9lDJ8KRjRYaBRsRaq4N/vw=="
	if res, err := carol.invite(ctx, "sip:dave@lync.test", sip.NewHeader("Ms-Conversation-ID", conv)); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	// The route set loses the Front End's entry.
	carol.routes = carol.routes[:len(carol.routes)-1]
	if res, err := carol.send(ctx, sip.MESSAGE, "text/plain", "bad route"); err != nil || res.StatusCode != 200 {
		t.Fatalf("MESSAGE: %v %v", res, err)
	}
	check("route set", "Route set changed")
	// CSeq going backwards.
	carol.cseq = 1 // the next MESSAGE reuses CSeq 2
	if _, err := carol.send(ctx, sip.MESSAGE, "text/plain", "old cseq"); err != nil {
		t.Fatal(err)
	}
	check("cseq", "CSeq")
	// The same conversation id for a second session while the first is open.
	second := startPlainUA(t, "carol", "sip.test", emu.PlainAddr())
	if res, err := second.invite(ctx, "sip:dave@lync.test", sip.NewHeader("Ms-Conversation-ID", conv)); err != nil || res.StatusCode != 200 {
		t.Fatalf("second INVITE: %v %v", res, err)
	}
	check("conversation id", "Ms-Conversation-ID")
	// Require with an unknown extension: 420, named.
	if res, err := carol.message(ctx, "sip:dave@lync.test", "x", sip.NewHeader("Require", "ms-benotify, x-weird")); err != nil || res.StatusCode != 420 ||
		res.GetHeader("Unsupported") == nil || res.GetHeader("Unsupported").Value() != "x-weird" {
		t.Errorf("Require x-weird: %v %v", res, err)
	}
}

func TestConferenceInvite(t *testing.T) {
	t.Parallel()
	for _, code := range []int{488, 603, 200} {
		lync, xmpp := pair(t, lyncemu.Behaviour{}, lyncemu.Behaviour{ConfInviteCode: code})
		ctx := testCtx(t)
		focus := "sip:dave@lync.test;gruu;opaque=app:conf:focus:id:ABC123"
		res, err := lync.User("dave").InviteToConference(ctx, "sip:alice@xmpp.test", focus)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != code {
			t.Errorf("answer %d, want %d", res.StatusCode, code)
		}
		ev, err := xmpp.Wait(ctx, lyncemu.Is(lyncemu.EventConfInvite))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Focus != focus || ev.Status != code || !strings.HasPrefix(ev.ContentType, "application/ms-conf-invite+xml") {
			t.Errorf("event %+v", ev)
		}
		if code == 200 {
			// Accepted: ACK, then the emulator (no focus to host) hangs up.
			if _, err := xmpp.Wait(ctx, lyncemu.Is(lyncemu.EventAck)); err != nil {
				t.Fatal(err)
			}
			if _, err := xmpp.Wait(ctx, lyncemu.Is(lyncemu.EventBye)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestUnknownUserAndClosedSession(t *testing.T) {
	t.Parallel()
	lync, _ := pair(t, lyncemu.Behaviour{}, lyncemu.Behaviour{})
	ctx := testCtx(t)
	if _, err := lync.User("mallory").Chat(ctx, "sip:alice@xmpp.test"); !errors.Is(err, lyncemu.ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	chat, err := lync.User("dave").Chat(ctx, "sip:alice@xmpp.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := chat.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	if err := chat.Typing(ctx); !errors.Is(err, lyncemu.ErrNoSession) {
		t.Errorf("typing without a session: %v", err)
	}
	// Writing again opens a new session carrying the message.
	if err := chat.Send(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	if !chat.Open() || chat.Reopened() != 1 {
		t.Errorf("open %v, reopened %d", chat.Open(), chat.Reopened())
	}
	if _, err := lync.User("dave").Chat(ctx, "sip:nobody@xmpp.test"); lyncemu.StatusCode(err) != 404 {
		t.Errorf("INVITE to an unknown peer: %v, want 404", err)
	}
}
