package lyncemu_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/lyncemu"
	"github.com/parleygw/parley/integration/sipua"
)

// federation is real Kamailio (sip.test, a TLS listener) federated with
// the emulated lync.test over mutual TLS: Kamailio routes lync.test to the
// emulator's Edge, the emulator sends everything to Kamailio's TLS port.
type federation struct {
	k   *harness.Kamailio
	emu *lyncemu.Emulator
}

func startFederation(t *testing.T, b lyncemu.Behaviour) *federation {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Kamailio")
	}
	ca := harness.StartTestCA(t)
	o := tlsConf(t, ca, "edge", "lync.test", "sip.lync.test")
	o.Behaviour = b
	emu := lyncemu.Start(t, o)
	leaf := ca.MustIssue(t, "kamailio", "127.0.0.1", "sip.test")
	k := harness.StartKamailio(t, harness.KamailioOptions{
		SIPDomain:   "sip.test",
		LyncDomains: map[string]string{"lync.test": emu.Addr()},
		TLSCert:     leaf.CertFile, TLSKey: leaf.KeyFile, TLSCA: ca.CertFile,
	})
	if err := emu.SetProxy(k.TLSAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if v := emu.Violations(); len(v) > 0 {
			t.Errorf("dialect violations: %q", v)
		}
		if t.Failed() {
			for _, e := range emu.Events() {
				t.Logf("event %d %s %s user=%s status=%d body=%q violations=%q", e.Seq, e.Type, e.Method, e.User, e.Status, e.Body, e.Violations)
			}
		}
	})
	return &federation{k: k, emu: emu}
}

// Two Lync users chat through Kamailio: every request leaves the Edge over
// TLS, Kamailio relays it back to the Edge over TLS (its LyncDomains
// route), and in-dialog requests follow the Record-Route set of both.
func TestLyncUsersThroughKamailio(t *testing.T) {
	t.Parallel()
	f := startFederation(t, lyncemu.Behaviour{})
	ctx := testCtx(t)
	dave, erin := f.emu.User("dave"), f.emu.User("erin")

	chat, err := dave.Chat(ctx, erin.URI(), lyncemu.FirstHTML("<b>hi</b> Erin"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := erin.Wait(ctx, lyncemu.Is(lyncemu.EventInvite))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Status != 200 || inv.Body != "hi Erin" || inv.HTML != "<b>hi</b> Erin" || inv.Peer != dave.URI() {
		t.Errorf("INVITE event %+v", inv)
	}
	if got := inv.Header("ms-edge-proxy-message-trust"); !strings.Contains(got, "ms-source-type=DirectPartner") {
		t.Errorf("the Edge did not mark the INVITE: %q", got)
	}
	if r, err := f.k.WaitRequest(ctx, func(r harness.KamailioRequest) bool {
		return r.Method == "INVITE" && r.CallID == inv.CallID
	}); err != nil || r.Proto != "tls" {
		t.Errorf("Kamailio got the INVITE as %+v, %v; want over tls", r, err)
	}
	if s, err := f.k.WaitSend(ctx, func(s harness.KamailioSend) bool {
		return s.Method == "INVITE" && s.CallID == inv.CallID
	}); err != nil || s.Proto != "tls" || s.Dest != f.emu.Addr() {
		t.Errorf("Kamailio sent the INVITE as %+v, %v; want tls to %s", s, err, f.emu.Addr())
	}
	if !strings.Contains(inv.Raw, "Record-Route: <sip:"+f.k.TLSAddr) {
		t.Errorf("Kamailio did not record-route the INVITE:\n%s", inv.Raw)
	}
	if _, err := erin.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "hi Erin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := erin.Wait(ctx, lyncemu.Is(lyncemu.EventAck)); err != nil {
		t.Fatal(err)
	}

	// Session mode both ways: messages, HTML, typing.
	back := erin.Session(dave.URI())
	if back == nil {
		t.Fatal("erin has no session with dave")
	}
	steps := []struct {
		name string
		do   func() error
		who  *lyncemu.User
		want lyncemu.Want
	}{
		{"dave types", func() error { return chat.Typing(ctx) }, erin, lyncemu.Want{Type: lyncemu.EventTyping, State: "type"}},
		{"dave writes", func() error { return chat.Send(ctx, "plain ✓") }, erin, lyncemu.Want{Type: lyncemu.EventMessage, Body: "plain ✓", ContentType: "text/plain"}},
		{"dave stops typing", func() error { return chat.Idle(ctx) }, erin, lyncemu.Want{Type: lyncemu.EventTyping, State: "idle"}},
		{"erin types", func() error { return back.Typing(ctx) }, dave, lyncemu.Want{Type: lyncemu.EventTyping, State: "type"}},
		{"erin writes HTML", func() error { return back.SendHTML(ctx, "<i>fine</i>") }, dave, lyncemu.Want{Type: lyncemu.EventMessage, Body: "<i>fine</i>", ContentType: "text/html"}},
		{"20 KB over TLS", func() error { return chat.Send(ctx, strings.Repeat("é", 10000)) }, erin, lyncemu.Want{Type: lyncemu.EventMessage, Body: strings.Repeat("é", 10000)}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		ev, err := s.who.Wait(ctx, s.want)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if ev.DialogID == "" || ev.Status != 200 {
			t.Errorf("%s: event %+v", s.name, ev)
		}
	}

	// Erin opens her own session to dave: both directions set up sessions.
	other, err := erin.Chat(ctx, dave.URI(), lyncemu.First("new window"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "new window"}); err != nil {
		t.Fatal(err)
	}
	if other.ConversationID() == chat.ConversationID() {
		t.Error("two sessions share a Ms-Conversation-ID")
	}
	for _, c := range []*lyncemu.Chat{chat, other} {
		if err := c.Bye(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := erin.Wait(ctx, lyncemu.Is(lyncemu.EventBye)); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Wait(ctx, lyncemu.Is(lyncemu.EventBye)); err != nil {
		t.Fatal(err)
	}
	if chat.Open() || erin.Session(dave.URI()) != nil {
		t.Error("sessions still open after BYE")
	}
}

// A plain SIP user at sip.test (registered at Kamailio, UDP) reaches
// dave@lync.test: pager mode is refused as Lync does, a session works,
// and a dropped dialog answers 481.
func TestPlainSIPUserToLync(t *testing.T) {
	t.Parallel()
	f := startFederation(t, lyncemu.Behaviour{})
	ctx := testCtx(t)
	carol := startPlainUA(t, "carol", "sip.test", f.k.Addr)
	if err := carol.register(ctx); err != nil {
		t.Fatal(err)
	}
	dave := f.emu.User("dave")

	res, err := carol.message(ctx, dave.URI(), "pager?")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 488 {
		t.Errorf("pager MESSAGE: %d %s, want 488", res.StatusCode, res.Reason)
	}
	if ev, err := dave.Wait(ctx, lyncemu.Is(lyncemu.EventPagerRejected)); err != nil || ev.Body != "pager?" || ev.Status != 488 {
		t.Fatalf("pager-rejected event %+v, %v", ev, err)
	}

	// The same for the harness's own SIP UA (sipua).
	bob := sipua.Start(t, sipua.Options{User: "bob", Domain: "sip.test", Proxy: f.k.Addr, Transport: "tcp"})
	if err := bob.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, err := bob.SendMessage(ctx, dave.URI(), "text/plain;charset=UTF-8", "pager from sipua"); err != nil || code != 488 {
		t.Errorf("sipua pager MESSAGE: %d, %v; want 488", code, err)
	}
	if _, err := dave.Wait(ctx, lyncemu.Want{Type: lyncemu.EventPagerRejected, Body: "pager from sipua", Peer: bob.AOR()}); err != nil {
		t.Fatal(err)
	}

	res, err = carol.invite(ctx, dave.URI())
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("INVITE: %d %s", res.StatusCode, res.Reason)
	}
	// The answer is Lync's (§2.1).
	if media, target := sdpMessageLine(string(res.Body())); media != "message" || target != dave.URI() {
		t.Errorf("answer SDP m-line target %q, want %s:\n%s", target, dave.URI(), res.Body())
	}
	if !supports(res, "ms-text-format") {
		t.Errorf("200 without Supported: ms-text-format:\n%s", res)
	}
	if to := res.To(); to == nil || !to.Params.Has("epid") {
		t.Errorf("200 To without epid: %v", res.To())
	}
	inv, err := dave.Wait(ctx, lyncemu.Is(lyncemu.EventInvite))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Peer != "sip:carol@sip.test" || inv.Body != "" {
		t.Errorf("INVITE event %+v", inv)
	}
	if _, err := dave.Wait(ctx, lyncemu.Is(lyncemu.EventAck)); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ ct, body string }{
		{"text/plain;charset=UTF-8", "in the session"},
		{"text/html", "<b>bold</b>"},
	} {
		if res, err := carol.send(ctx, sip.MESSAGE, c.ct, c.body); err != nil || res.StatusCode != 200 {
			t.Fatalf("MESSAGE %d: %v %v", i, res, err)
		}
		if _, err := dave.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: c.body}); err != nil {
			t.Fatal(err)
		}
	}
	// RFC 3994 typing is not Lync's (§2.3): 415.
	if res, err := carol.send(ctx, sip.MESSAGE, "application/im-iscomposing+xml", "<isComposing/>"); err != nil || res.StatusCode != 415 {
		t.Errorf("im-iscomposing MESSAGE: %v %v, want 415", res, err)
	}
	// Dave answers in the same session.
	s := dave.Session("sip:carol@sip.test")
	if s == nil {
		t.Fatal("dave has no session with carol")
	}
	if err := s.Send(ctx, "hello carol"); err != nil {
		t.Fatal(err)
	}
	got, err := carol.wait(ctx, func(r *sip.Request) bool { return string(r.Body()) == "hello carol" })
	if err != nil {
		t.Fatal(err)
	}
	if got.CallID().Value() != carol.callID {
		t.Errorf("dave's MESSAGE is not in the session: Call-ID %s", got.CallID().Value())
	}

	// The emulator forgets its dialogs: the next request gets 481.
	f.emu.DropDialogs()
	for _, m := range []sip.RequestMethod{sip.MESSAGE, sip.INFO, sip.BYE} {
		res, err := carol.send(ctx, m, "text/plain", "anyone?")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 481 {
			t.Errorf("%s after the drop: %d, want 481", m, res.StatusCode)
		}
		if _, err := dave.Wait(ctx, lyncemu.Want{Type: lyncemu.EventNoDialog, Status: 481}); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}

// Kamailio must not refuse Lync's option tags (lync-dialect.md §1.8: its
// sanity module answers 420 to unknown Proxy-Require tags by default):
// requests carrying them reach the emulator, in both directions.
func TestLyncOptionTagsPassKamailio(t *testing.T) {
	t.Parallel()
	f := startFederation(t, lyncemu.Behaviour{AcceptPager: true})
	ctx := testCtx(t)
	carol := startPlainUA(t, "carol", "sip.test", f.k.Addr)
	cases := []struct{ header, value string }{
		{"Proxy-Require", "ms-benotify"},
		{"Require", "com.microsoft.rtc-multiparty"},
		{"Supported", "ms-dialog-route-set-update, ms-embedded-first-message, ms-piggyback-first-notify"},
		{"Supported", "ms-benotify"},
		{"Require", "ms-text-format"},
	}
	for i, c := range cases {
		body := "tags " + string(rune('a'+i))
		res, err := carol.message(ctx, f.emu.User("erin").URI(), body, sip.NewHeader(c.header, c.value))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Errorf("%s: %s: got %d %s, want 200 from the emulator", c.header, c.value, res.StatusCode, res.Reason)
			continue
		}
		ev, err := f.emu.Wait(ctx, lyncemu.Want{Type: lyncemu.EventPager, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Header(c.header) != c.value {
			t.Errorf("%s arrived as %q, want %q", c.header, ev.Header(c.header), c.value)
		}
	}
	// And the emulator's own INVITE, with all of SfB's Supported tags,
	// comes back through Kamailio.
	if _, err := f.emu.User("dave").Chat(ctx, "sip:erin@lync.test", lyncemu.WithHeader("Proxy-Require", "ms-benotify")); err != nil {
		t.Fatal(err)
	}
	// An extension the Lync side does not know is refused by the
	// emulator, not by Kamailio: the 420 names it.
	res, err := carol.message(ctx, "sip:erin@lync.test", "x", sip.NewHeader("Require", "x-not-lync"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 420 || res.GetHeader("Unsupported") == nil || res.GetHeader("Unsupported").Value() != "x-not-lync" {
		t.Errorf("Require: x-not-lync: %d, Unsupported %v", res.StatusCode, res.GetHeader("Unsupported"))
	}
}

// The first message when the callee does not take it from the INVITE, a
// 481 that makes Lync re-INVITE, a policy refusal and a conference
// invitation, all through Kamailio.
func TestLyncBehavioursThroughKamailio(t *testing.T) {
	t.Parallel()
	f := startFederation(t, lyncemu.Behaviour{NoTextFormat: true, PolicyWord: "forbidden"})
	ctx := testCtx(t)
	dave, erin := f.emu.User("dave"), f.emu.User("erin")

	chat, err := dave.Chat(ctx, erin.URI(), lyncemu.First("first"))
	if err != nil {
		t.Fatal(err)
	}
	if !chat.FirstResent() || supports(chat.Answer(), "ms-text-format") {
		t.Errorf("FirstResent %v; the 200 must lack ms-text-format", chat.FirstResent())
	}
	m, err := erin.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Embedded {
		t.Error("the resent first message is marked embedded")
	}

	// Erin's side loses the dialog; dave's next message gets 481, so he
	// sends BYE and a new INVITE carrying it (§7 item 8).
	erin.Session(dave.URI()).Drop()
	if err := chat.Send(ctx, "after the drop"); err != nil {
		t.Fatal(err)
	}
	if _, err := erin.Wait(ctx, lyncemu.Want{Type: lyncemu.EventNoDialog, Status: 481}); err != nil {
		t.Fatal(err)
	}
	if _, err := erin.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "after the drop"}); err != nil {
		t.Fatal(err)
	}
	if chat.Reopened() != 1 || !chat.Open() {
		t.Errorf("Reopened %d, open %v", chat.Reopened(), chat.Open())
	}

	err = chat.Send(ctx, "this is Forbidden here")
	if lyncemu.StatusCode(err) != 606 {
		t.Fatalf("policy word: %v, want 606", err)
	}
	var se *lyncemu.StatusError
	if !asStatus(err, &se) || !strings.HasPrefix(se.Warning, "309 ") {
		t.Errorf("606 Warning %q, want 309", se.Warning)
	}
	if _, err := erin.Wait(ctx, lyncemu.Want{Type: lyncemu.EventPolicyRejected, Status: 606}); err != nil {
		t.Fatal(err)
	}

	res, err := dave.InviteToConference(ctx, erin.URI(), "sip:dave@lync.test;gruu;opaque=app:conf:focus:id:4FNRHN16")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 488 {
		t.Errorf("conference invitation answered %d, want 488", res.StatusCode)
	}
	ev, err := erin.Wait(ctx, lyncemu.Is(lyncemu.EventConfInvite))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Focus != "sip:dave@lync.test;gruu;opaque=app:conf:focus:id:4FNRHN16" {
		t.Errorf("focus %q", ev.Focus)
	}
}

// The topology Parley runs in: Lync ⇄ (TLS) ⇄ Kamailio ⇄ (UDP/TCP) ⇄
// Parley's SIP side, here another emulator serving xmpp.test on plain
// SIP. Sessions both ways, with each of the harness's transport policies
// towards Parley.
func TestLyncAndXMPPDomainThroughKamailio(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs Kamailio")
	}
	for _, policy := range []string{"udp", "tcp", "follow"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			ca := harness.StartTestCA(t)
			lync := lyncemu.Start(t, tlsConf(t, ca, "edge", "lync.test"))
			o := tlsConf(t, ca, "parley", "xmpp.test")
			o.Domain, o.Users, o.PlainAddr, o.ProxyTransport = "xmpp.test", []string{"alice"}, "127.0.0.1:0", "tcp"
			parley := lyncemu.Start(t, o)
			leaf := ca.MustIssue(t, "kamailio", "127.0.0.1", "sip.test")
			k := harness.StartKamailio(t, harness.KamailioOptions{
				LyncDomains: map[string]string{"lync.test": lync.Addr()},
				XMPPDomains: []string{"xmpp.test"}, ParleyAddr: parley.PlainAddr(), ParleyTransport: policy,
				TLSCert: leaf.CertFile, TLSKey: leaf.KeyFile, TLSCA: ca.CertFile,
			})
			if err := lync.SetProxy(k.TLSAddr); err != nil {
				t.Fatal(err)
			}
			if err := parley.SetProxy(k.Addr); err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			dave, alice := lync.User("dave"), parley.User("alice")

			chat, err := dave.Chat(ctx, alice.URI(), lyncemu.First("hello from Lync"))
			if err != nil {
				t.Fatal(err)
			}
			inv, err := alice.Wait(ctx, lyncemu.Is(lyncemu.EventInvite))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "hello from Lync"}); err != nil {
				t.Fatal(err)
			}
			// INVITEs are over 1300 bytes: TCP whatever the policy.
			if s, err := k.WaitSend(ctx, func(s harness.KamailioSend) bool { return s.CallID == inv.CallID && s.Method == "INVITE" }); err != nil ||
				s.Dest != parley.PlainAddr() || s.Proto != "tcp" {
				t.Errorf("INVITE to Parley sent as %+v, %v", s, err)
			}
			if err := chat.Send(ctx, "small"); err != nil {
				t.Fatal(err)
			}
			m, err := alice.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "small"})
			if err != nil {
				t.Fatal(err)
			}
			// In the dialog Kamailio follows the Route set: the stand-in,
			// being an emulated Edge, record-routed its TLS address
			// (Parley does not record-route).
			if r, err := k.WaitRequest(ctx, func(r harness.KamailioRequest) bool { return r.CallID == m.CallID && r.Method == "MESSAGE" }); err != nil || r.Proto != "tls" {
				t.Errorf("Kamailio got the in-dialog MESSAGE as %+v, %v", r, err)
			}
			reply := alice.Session(dave.URI())
			if reply == nil {
				t.Fatal("alice has no session")
			}
			if err := reply.Typing(ctx); err != nil {
				t.Fatal(err)
			}
			if err := reply.SendHTML(ctx, "<i>hello from XMPP</i>"); err != nil {
				t.Fatal(err)
			}
			if _, err := dave.Wait(ctx, lyncemu.Want{Type: lyncemu.EventTyping, State: "type"}); err != nil {
				t.Fatal(err)
			}
			if _, err := dave.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "<i>hello from XMPP</i>"}); err != nil {
				t.Fatal(err)
			}
			// The other way: the "Parley" side opens a session to Lync.
			back, err := alice.Chat(ctx, dave.URI(), lyncemu.First("new session from XMPP"))
			if err != nil {
				t.Fatal(err)
			}
			in, err := dave.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "new session from XMPP"})
			if err != nil {
				t.Fatal(err)
			}
			if !in.Embedded {
				t.Error("first message not taken from the INVITE")
			}
			if s, err := k.WaitSend(ctx, func(s harness.KamailioSend) bool { return s.CallID == in.CallID && s.Method == "INVITE" }); err != nil ||
				s.Dest != lync.Addr() || s.Proto != "tls" {
				t.Errorf("INVITE to Lync sent as %+v, %v", s, err)
			}
			for _, c := range []*lyncemu.Chat{chat, back} {
				if err := c.Bye(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := alice.Wait(ctx, lyncemu.Is(lyncemu.EventBye)); err != nil {
				t.Fatal(err)
			}
			if _, err := dave.Wait(ctx, lyncemu.Is(lyncemu.EventBye)); err != nil {
				t.Fatal(err)
			}
			for _, e := range []*lyncemu.Emulator{lync, parley} {
				if v := e.Violations(); len(v) > 0 {
					t.Errorf("%s: violations %q", e.Domain(), v)
				}
			}
		})
	}
}
