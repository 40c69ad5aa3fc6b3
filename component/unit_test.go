package component

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	xstream "mellium.im/xmpp/stream"
)

func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	ceil := 100 * time.Millisecond
	for i := 0; i < 10; i++ {
		d := b.delay()
		if d < ceil/2 || d > ceil {
			t.Errorf("delay %d = %v, want in [%v, %v]", i, d, ceil/2, ceil)
		}
		ceil = min(2*ceil, time.Second)
	}
	b.reset()
	if d := b.delay(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

func TestClassify(t *testing.T) {
	se := func(cond string) error { return fmt.Errorf("handshake: %w", xstream.Error{Err: cond}) }
	for _, tc := range []struct {
		err       error
		wasUp     bool
		conflicts int
		fatal     string // condition, or "" for retry
	}{
		{se("not-authorized"), false, 0, "not-authorized"},
		{se("not-authorized"), true, 0, "not-authorized"},
		{se("host-unknown"), false, 0, "host-unknown"},
		{se("invalid-namespace"), false, 0, "invalid-namespace"},
		{se("conflict"), false, 1, "conflict"},
		{se("conflict"), true, 1, ""}, // our previous connection may linger
		{se("conflict"), true, maxConflicts, "conflict"},
		{se("system-shutdown"), true, 0, ""},
		{errors.New("dial tcp: connection refused"), false, 0, ""},
	} {
		ce := classify("sip.test", "127.0.0.1:5347", tc.err, tc.wasUp, tc.conflicts)
		got := ""
		if ce != nil {
			got = ce.Condition
			if !strings.HasPrefix(ce.Error(), "component sip.test: ") {
				t.Errorf("%v: message %q does not name the domain", tc.err, ce.Error())
			}
		}
		if got != tc.fatal {
			t.Errorf("classify(%v, up=%v, conflicts=%d) = %q, want %q", tc.err, tc.wasUp, tc.conflicts, got, tc.fatal)
		}
	}
}

func TestInboundEventID(t *testing.T) {
	a := inboundEventID("alice@xmpp.test/x", "m1")
	if a != inboundEventID("alice@xmpp.test/x", "m1") || len(a) != 34 || !strings.HasPrefix(a, "x:") {
		t.Errorf("event id %q is not stable or not x:+32 hex", a)
	}
	if a == inboundEventID("alice@xmpp.test/y", "m1") {
		t.Error("different senders share an event id")
	}
	if inboundEventID("a@b", "") == inboundEventID("a@b", "") {
		t.Error("messages without id share an event id")
	}
}

func TestPick(t *testing.T) {
	alts := []langText{{Lang: "de", Text: "Hallo"}, {Text: "Hello"}, {Lang: "fr", Text: "Salut"}}
	for _, tc := range []struct{ lang, text, textLang string }{
		{"fr", "Salut", "fr"},
		{"en", "Hello", "en"},
		{"", "Hello", ""},
	} {
		text, lang, ok := pick(alts, tc.lang)
		if !ok || text != tc.text || lang != tc.textLang {
			t.Errorf("pick(%q) = %q, %q, %v", tc.lang, text, lang, ok)
		}
	}
	if text, lang, _ := pick(alts[:1], "en"); text != "Hallo" || lang != "de" {
		t.Errorf("only a German body: got %q in %q", text, lang)
	}
	if _, _, ok := pick(nil, ""); ok {
		t.Error("pick of nothing")
	}
}

func TestCountingConnHardLimit(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = b.Write(make([]byte, 300)) }()
	c := newCountingConn(a, 100)
	buf := make([]byte, 150)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, errStanzaTooLarge) {
		t.Fatalf("read past the limit: %v", err)
	}
	c.mark()
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("read after mark: %v", err)
	}
}
