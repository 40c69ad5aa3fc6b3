package lyncemu_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/integration/lyncemu"
)

var update = flag.Bool("update", false, "rewrite testdata/lync-*.sip from what the emulator sends")

// captured is what the emulator sends in one IM conversation, as it leaves
// its Edge: dave@lync.test opens a session to alice@xmpp.test (another
// emulator, standing in for Parley).
type captured map[string]string

func capture(t *testing.T) captured {
	t.Helper()
	lync, xmpp := pair(t, lyncemu.Behaviour{PolicyWord: "forbidden"}, lyncemu.Behaviour{})
	ctx := testCtx(t)
	out := captured{}
	raw := func(m lyncemu.Matcher) string {
		t.Helper()
		ev, err := xmpp.Wait(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Raw
	}
	chat, err := lync.User("dave").Chat(ctx, "sip:alice@xmpp.test", lyncemu.FirstHTML(`<SPAN style="font-family:Segoe UI;">Hello Alice</SPAN>`))
	if err != nil {
		t.Fatal(err)
	}
	out["im-invite"] = raw(lyncemu.Is(lyncemu.EventInvite))
	out["im-ack"] = raw(lyncemu.Is(lyncemu.EventAck))
	if err := chat.Send(ctx, "How are you?"); err != nil {
		t.Fatal(err)
	}
	out["im-message"] = raw(lyncemu.Want{Type: lyncemu.EventMessage, ContentType: "text/plain", Body: "How are you?"})
	if err := chat.SendHTML(ctx, "<b>bold</b> move"); err != nil {
		t.Fatal(err)
	}
	out["im-message-html"] = raw(lyncemu.Want{Type: lyncemu.EventMessage, Body: "<b>bold</b> move"})
	if err := chat.Typing(ctx); err != nil {
		t.Fatal(err)
	}
	out["im-info-typing"] = raw(lyncemu.Is(lyncemu.EventTyping))
	if err := chat.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	out["im-bye"] = raw(lyncemu.Is(lyncemu.EventBye))

	// Answers the Lync side gives: alice opens a session to dave.
	back, err := xmpp.User("alice").Chat(ctx, "sip:dave@lync.test", lyncemu.First("hi dave"))
	if err != nil {
		t.Fatal(err)
	}
	out["im-invite-200-ok"] = asSent(back.Answer())
	if _, err := lync.Wait(ctx, lyncemu.Is(lyncemu.EventInvite)); err != nil {
		t.Fatal(err)
	}
	err = back.Send(ctx, "something forbidden")
	if lyncemu.StatusCode(err) != 606 {
		t.Fatalf("policy: %v", err)
	}

	if _, err := lync.User("dave").InviteToConference(ctx, "sip:alice@xmpp.test", "sip:dave@lync.test;gruu;opaque=app:conf:focus:id:4FNRHN16"); err != nil {
		t.Fatal(err)
	}
	out["conf-invite"] = raw(lyncemu.Is(lyncemu.EventConfInvite))
	return out
}

// asSent is a response as its sender wrote it: without the trust header
// the receiving Edge added.
func asSent(res *sip.Response) string {
	c := res.Clone()
	c.RemoveHeader("ms-edge-proxy-message-trust")
	return c.String()
}

// normalizers replace what changes from run to run (tags, ids, ports,
// signatures) so that messages compare by shape.
var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`tag=[0-9a-f]+`), "tag=TAG"},
	{regexp.MustCompile(`epid=[0-9a-f]+`), "epid=EPID"},
	{regexp.MustCompile(`opaque=user:epid:[A-Za-z0-9_-]+`), "opaque=user:epid:GRUU"},
	{regexp.MustCompile(`branch=z9hG4bK[0-9a-f]+`), "branch=z9hG4bKBRANCH"},
	{regexp.MustCompile(`urn:uuid:[0-9a-f-]+`), "urn:uuid:UUID"},
	{regexp.MustCompile(`ms-route-sig=[A-Za-z0-9_-]+`), "ms-route-sig=SIG"},
	{regexp.MustCompile(`ms-key-info=[A-Za-z0-9_-]+`), "ms-key-info=KEY"},
	{regexp.MustCompile(`ms-internal-info=[A-Za-z0-9_"-]+`), "ms-internal-info=INFO"},
	{regexp.MustCompile(`opaque=state:T:F:Ci\.R[0-9a-f]+`), "opaque=state:T:F:Ci.RSTATE"},
	{regexp.MustCompile(`ms-received-port=\d+`), "ms-received-port=PORT"},
	{regexp.MustCompile(`rport=\d+`), "rport=PORT"},
	{regexp.MustCompile(`ms-received-cid=[0-9A-F]+`), "ms-received-cid=CID"},
	{regexp.MustCompile(`(?m)^(Call-ID|Ms-Conversation-ID): .*$`), "$1: ID"},
	{regexp.MustCompile(`(?m)^CSeq: \d+`), "CSeq: N"},
}

func normalize(msg string) string {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	for _, n := range normalizers {
		msg = n.re.ReplaceAllString(msg, n.with)
	}
	return msg
}

// fixtureHeader is the first line of each testdata/lync-*.sip file, in the
// convention of the shared samples.
const fixtureHeader = "# CONSTRUCTED by integration/lyncemu (go test -run TestGoldenMessages -update): what the emulated Lync Edge sends, in the shape of lync-dialect.md §1.5/§2 and samples 01, 06-08. Not a capture.\n"

// The emulator's messages match the fixtures in testdata (which Parley's
// SIP-side tests read as Lync input): same headers in the same order, same
// parameters and bodies, modulo tags, ids and ports.
func TestGoldenMessages(t *testing.T) {
	t.Parallel()
	got := capture(t)
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join("testdata", "lync-"+name+".sip")
		if *update {
			if err := os.WriteFile(path, []byte(fixtureHeader+got[name]), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		want := stripComment(string(b))
		if normalize(got[name]) != normalize(want) {
			t.Errorf("%s differs from %s (run with -update after reviewing):\n--- got\n%s\n--- want\n%s", name, path, normalize(got[name]), normalize(want))
		}
	}
}

// Every fixture parses as SIP, with a Content-Length that fits its body.
func TestFixturesParse(t *testing.T) {
	t.Parallel()
	paths, _ := filepath.Glob(filepath.Join("testdata", "lync-*.sip"))
	if len(paths) < 8 {
		t.Fatalf("only %d fixtures in testdata", len(paths))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		msg := stripComment(string(b))
		if !strings.Contains(msg, "\r\n") {
			t.Errorf("%s: no CRLF line ends (a checkout converted them?)", p)
		}
		m, err := sip.ParseMessage([]byte(msg))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if cl := m.ContentLength(); cl == nil || int(*cl) != len(m.Body()) {
			t.Errorf("%s: Content-Length %v for a %d-byte body", p, cl, len(m.Body()))
		}
	}
}

func stripComment(s string) string {
	if strings.HasPrefix(s, "#") {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			return s[i+1:]
		}
	}
	return s
}

// The shapes of the samples in shared/lync (and of TC sample 01 as
// lync-dialect.md §2.1 quotes it): every header a sample has, the
// emulator's message has too, and the SDP lines and parameters Lync peers
// rely on are there. This is the §7 checklist where it concerns IM.
func TestMatchesSampleStructure(t *testing.T) {
	t.Parallel()
	got := capture(t)
	sample01 := []string{"From", "To", "Contact", "ms-text-format", "ms-im-format", "Supported", "Ms-Conversation-ID",
		"Roster-Manager", "EndPoints", "ms-keep-alive", "Allow", "Content-Type"}
	cases := []struct {
		name    string
		sample  string   // file in shared/lync (skipped when absent)
		headers []string // headers the sample shows
		lines   []*regexp.Regexp
	}{
		{"im-invite", "08-gateway-im-invite-sipe-style.txt", sample01, []*regexp.Regexp{
			regexp.MustCompile(`(?m)^INVITE sip:alice@xmpp\.test SIP/2\.0\r$`),
			regexp.MustCompile(`(?m)^From: "Dave" <sip:dave@lync\.test>;tag=[0-9a-f]{10};epid=[0-9a-f]{10}\r$`),
			regexp.MustCompile(`(?m)^Contact: <sip:dave@lync\.test;opaque=user:epid:[A-Za-z0-9_-]+;gruu>;\+sip\.instance="<urn:uuid:[0-9a-f-]{36}>"\r$`),
			regexp.MustCompile(`(?m)^ms-text-format: text/plain; charset=UTF-8;ms-body=[A-Za-z0-9+/]+=*\r$`),
			regexp.MustCompile(`(?m)^ms-im-format: text/html; charset=UTF-8;ms-body=[A-Za-z0-9+/]+=*\r$`),
			regexp.MustCompile(`(?m)^Ms-Conversation-ID: [A-Za-z0-9+/]{30}==\r$`),
			regexp.MustCompile(`(?m)^ms-keep-alive: UAC;hop-hop=yes\r$`),
			regexp.MustCompile(`(?m)^User-Agent: UCCAPI/`),
			regexp.MustCompile(`(?m)^Supported: ms-sender\r$`),
			regexp.MustCompile(`(?m)^Supported: ms-embedded-first-message\r$`),
			regexp.MustCompile(`(?m)^Record-Route: <sip:[^>]*;ms-fe=fe01\.lync\.test;lr;ms-route-sig=`),
			regexp.MustCompile(`(?m)^Record-Route: <sip:[^>]*;opaque=state:[^>]*;lr;ms-key-info=[^>]*;ms-route-sig=`),
			regexp.MustCompile(`(?m)^Via: SIP/2\.0/TLS [^;]*;branch=z9hG4bK[0-9a-f]+;branched=FALSE;ms-internal-info=`),
			regexp.MustCompile(`(?m)^Via: .*;ms-received-port=\d+;ms-received-cid=[0-9A-F]+\r$`),
			regexp.MustCompile(`(?m)^Content-Type: application/sdp\r$`),
			// The SDP of an IM offer (§2.1).
			regexp.MustCompile(`(?m)^v=0\r$`), regexp.MustCompile(`(?m)^o=- 0 0 IN IP4 \S+\r$`), regexp.MustCompile(`(?m)^s=session\r$`),
			regexp.MustCompile(`(?m)^c=IN IP4 \S+\r$`), regexp.MustCompile(`(?m)^t=0 0\r$`), regexp.MustCompile(`(?m)^m=message 5060 sip null\r$`),
			regexp.MustCompile(`(?m)^a=accept-types:text/plain .*text/html.* \r$`),
		}},
		{"im-info-typing", "06-im-typing-info.txt", nil, []*regexp.Regexp{
			regexp.MustCompile(`(?m)^INFO sip:alice@xmpp\.test;opaque=user:epid:[A-Za-z0-9_-]+;gruu SIP/2\.0\r$`),
			regexp.MustCompile(`(?m)^To: <sip:alice@xmpp\.test>;tag=[0-9a-f]+;epid=[0-9a-f]+\r$`),
			regexp.MustCompile(`(?m)^Route: <sip:`),
			regexp.MustCompile(`(?m)^Content-Type: application/xml\r$`),
			regexp.MustCompile(`(?m)^<\?xml version="1\.0"\?><KeyboardActivity> <status status="type" /></KeyboardActivity>$`),
		}},
		{"im-bye", "07-im-bye.txt", nil, []*regexp.Regexp{
			regexp.MustCompile(`(?m)^BYE sip:alice@xmpp\.test;opaque=user:epid:[A-Za-z0-9_-]+;gruu SIP/2\.0\r$`),
			regexp.MustCompile(`(?m)^From: "Dave" <sip:dave@lync\.test>;tag=[0-9a-f]+;epid=[0-9a-f]+\r$`),
			regexp.MustCompile(`(?m)^CSeq: \d+ BYE\r$`),
			regexp.MustCompile(`(?m)^Content-Length: 0\r$`),
		}},
		{"im-message", "", nil, []*regexp.Regexp{
			regexp.MustCompile(`(?m)^Content-Type: text/plain; charset=UTF-8\r$`),
			regexp.MustCompile(`(?m)^Supported: ms-dialog-route-set-update\r$`),
			regexp.MustCompile(`(?m)^Contact: <sip:dave@lync\.test;opaque=user:epid:`),
		}},
		{"im-message-html", "", nil, []*regexp.Regexp{regexp.MustCompile(`(?m)^Content-Type: text/html; charset=UTF-8\r$`)}},
		{"im-invite-200-ok", "", nil, []*regexp.Regexp{
			regexp.MustCompile(`(?m)^SIP/2\.0 200 OK\r$`),
			regexp.MustCompile(`(?m)^To: <sip:dave@lync\.test>;tag=[0-9a-f]+;epid=[0-9a-f]+\r$`),
			regexp.MustCompile(`(?m)^Supported: ms-text-format\r$`),
			regexp.MustCompile(`(?m)^ms-keep-alive: UAS;tcp=no;hop-hop=yes;end-end=no;timeout=300\r$`),
			regexp.MustCompile(`(?m)^m=message 5060 sip sip:dave@lync\.test\r$`),
			regexp.MustCompile(`(?m)^Record-Route: <sip:[^>]*;ms-fe=fe01\.lync\.test;`),
		}},
	}
	dir := filepath.Join("..", "..", "..", "shared", "lync")
	for _, c := range cases {
		msg := got[c.name]
		headers := c.headers
		if c.sample != "" {
			b, err := os.ReadFile(filepath.Join(dir, c.sample))
			switch {
			case err == nil:
				sample, err := sip.ParseMessage([]byte(stripComment(string(b))))
				if err != nil {
					t.Errorf("sample %s does not parse: %v", c.sample, err)
					break
				}
				for _, h := range sample.(*sip.Request).Headers() {
					headers = append(headers, h.Name())
				}
			case os.IsNotExist(err):
				t.Logf("sample %s not found beside the repository: checking the built-in header list only", c.sample)
			default:
				t.Fatal(err)
			}
		}
		parsed, err := sip.ParseMessage([]byte(msg))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, h := range headers {
			if len(parsed.GetHeaders(h)) == 0 {
				t.Errorf("%s lacks %s, which sample %s has", c.name, h, c.sample)
			}
		}
		for _, re := range c.lines {
			if !re.MatchString(msg) {
				t.Errorf("%s: no line matches %s\n%s", c.name, re, msg)
			}
		}
	}
}
