package lyncemu

import (
	"errors"
	"strings"
	"testing"
)

func TestTextFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, value, wantType, wantBody string
		wantErr                         error
	}{
		// TC sample 01 (lync-dialect.md §2.1): "cXdl" is "qwe".
		{"sfb capture", "text/plain; charset=UTF-8; ms-body=cXdl", "text/plain", "qwe", nil},
		{"sipe form with msgr", "text/html; charset=UTF-8;msgr=WAAtAE0A;ms-body=PGI+aGk8L2I+", "text/html", "<b>hi</b>", nil},
		{"no spaces, upper-case key", "text/plain;charset=UTF-8;MS-BODY=aGVsbG8=", "text/plain", "hello", nil},
		{"unpadded base64", "text/plain; ms-body=aGVsbG8", "text/plain", "hello", nil},
		{"no body", "text/plain; charset=UTF-8", "text/plain", "", ErrNoMsBody},
	}
	for _, c := range cases {
		typ, body, err := ParseTextFormat(c.value)
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) {
				t.Errorf("%s: err %v, want %v", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || typ != c.wantType || body != c.wantBody {
			t.Errorf("%s: got %q %q %v, want %q %q", c.name, typ, body, err, c.wantType, c.wantBody)
		}
	}
	if _, _, err := ParseTextFormat("text/plain; ms-body=%%%"); err == nil {
		t.Error("bad base64 accepted")
	}
	for _, s := range []string{"", "hello", "ünïcödé 👋", strings.Repeat("x", 5000), "a;b=c\r\n"} {
		typ, body, err := ParseTextFormat(EncodeTextFormat("text/plain", s))
		if err != nil || typ != "text/plain" || body != s {
			t.Errorf("round trip of %q: %q %q %v", s, typ, body, err)
		}
	}
}

func TestMessageSDP(t *testing.T) {
	t.Parallel()
	offer := messageSDP("192.0.2.1", 5060, "null")
	for _, want := range []string{"v=0\r\n", "o=- 0 0 IN IP4 192.0.2.1\r\n", "s=session\r\n", "c=IN IP4 192.0.2.1\r\n",
		"t=0 0\r\n", "m=message 5060 sip null\r\n", "a=accept-types:text/plain multipart/alternative image/gif text/rtf text/html application/x-ms-ink application/ms-imdn+xml text/x-msmsgsinvite \r\n"} {
		if !strings.Contains(offer, want) {
			t.Errorf("offer lacks %q:\n%s", want, offer)
		}
	}
	cases := []struct {
		sdp, media, target string
		ok                 bool
	}{
		{offer, "message", "null", true},
		{messageSDP("127.0.0.1", 5060, "sip:dave@lync.test"), "message", "sip:dave@lync.test", true},
		{"v=0\nm=message 5061 sip null \n", "message", "null", true}, // LF only, trailing space
		{"v=0\r\nm=x-ms-message 5060 sip null\r\n", "x-ms-message", "null", true},
		{"v=0\r\nm=audio 5004 RTP/AVP 0\r\n", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		media, target, ok := parseMessageSDP(c.sdp)
		if media != c.media || target != c.target || ok != c.ok {
			t.Errorf("parseMessageSDP(%q) = %q %q %v, want %q %q %v", c.sdp, media, target, ok, c.media, c.target, c.ok)
		}
	}
}

func TestKeyboardActivity(t *testing.T) {
	t.Parallel()
	// The body of sample 06, byte for byte.
	const sample06 = `<?xml version="1.0"?><KeyboardActivity> <status status="type" /></KeyboardActivity>`
	if got := keyboardActivity("type"); got != sample06 {
		t.Errorf("got %q, want %q", got, sample06)
	}
	cases := []struct {
		body, want string
		ok         bool
	}{
		{sample06, "type", true},
		{keyboardActivity("idle"), "idle", true},
		{"<KeyboardActivity>\n  <status status=\"type\"/>\n</KeyboardActivity>", "type", true},
		{`<isComposing><state>active</state></isComposing>`, "", false},
	}
	for _, c := range cases {
		got, ok := parseKeyboardActivity(c.body)
		if got != c.want || ok != c.ok {
			t.Errorf("parseKeyboardActivity(%q) = %q %v", c.body, got, ok)
		}
	}
}

func TestConfInvite(t *testing.T) {
	t.Parallel()
	focus := "sip:dave@lync.test;gruu;opaque=app:conf:focus:id:4FNRHN16"
	body := confInviteBody(focus, "a & b")
	if got := parseFocusURI(body); got != focus {
		t.Errorf("focus %q from %s", got, body)
	}
	if !strings.Contains(body, "<subject>a &amp; b</subject>") {
		t.Errorf("subject not escaped: %s", body)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		for _, tok := range []string{newTag(), newCallID(), newConversationID(), newGruuOpaque(), newInstance()} {
			if seen[tok] {
				t.Fatalf("token %q repeated", tok)
			}
			seen[tok] = true
		}
	}
	if e := newEpid(); len(e) != 10 || strings.Trim(e, "0123456789abcdef") != "" {
		t.Errorf("epid %q: want 10 hex digits", e)
	}
	if c := newConversationID(); len(c) != 32 || !strings.HasSuffix(c, "==") {
		t.Errorf("conversation id %q: want SfB's 32-character base64", c)
	}
	if g := newGruuOpaque(); !strings.HasPrefix(g, "user:epid:") || !strings.HasSuffix(g, "AA") {
		t.Errorf("gruu opaque %q", g)
	}
	if u := newInstance(); len(u) != len("<urn:uuid:8a6f3d9e-1111-4222-8333-444455556666>") || u[24] != '4' {
		t.Errorf("instance %q: want a v4 UUID URN", u)
	}
	if got := htmlToText(`<SPAN lang="en-us" style="color:#000000">qwe &amp; rty</SPAN>`); got != "qwe & rty" {
		t.Errorf("htmlToText: %q", got)
	}
	if got := splitTags([]string{"ms-text-format, timer", " ms-sender ", ""}); strings.Join(got, "|") != "ms-text-format|timer|ms-sender" {
		t.Errorf("splitTags: %q", got)
	}
}
