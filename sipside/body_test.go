package sipside

import (
	"strings"
	"testing"
)

func TestExtractText(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		want, lang     string
		status         int
	}{
		{"plain", "text/plain", "hi 👋", "hi 👋", "", 0},
		{"charset param", "text/plain; charset=ISO-8859-1", "ascii only", "ascii only", "", 0},
		{"upper case type", "Text/Plain;charset=UTF-8", "x", "x", "", 0},
		{"cpim", "message/cpim", "From: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nbody\r\n", "body\r\n", "", 0},
		{"cpim LF only", "message/cpim", "From: <sip:a@b>\n\nContent-Type: text/plain;charset=utf-8\nContent-Language: en-GB, fr\n\nhello", "hello", "en-GB", 0},
		{"cpim no CPIM headers", "message/cpim", "\r\nContent-Type: text/plain\r\n\r\nx", "x", "", 0},
		{"cpim default inner type", "message/cpim", "From: <sip:a@b>\r\n\r\nContent-Length: 1\r\n\r\nx", "x", "", 0},
		{"cpim body keeps blank lines", "message/cpim", "A: b\r\n\r\nContent-Type: text/plain\r\n\r\none\r\n\r\ntwo", "one\r\n\r\ntwo", "", 0},
		{"cpim html", "message/cpim", "A: b\r\n\r\nContent-Type: text/html\r\n\r\n<p>x</p>", "", "", 415},
		{"cpim no MIME end", "message/cpim", "A: b\r\n\r\nContent-Type: text/plain", "", "", 400},
		{"cpim bad header", "message/cpim", "A: b\r\n\r\nnot a header\r\n\r\nx", "", "", 400},
		{"html", "text/html", "<b>x</b>", "", "", 415},
		{"multipart", "multipart/alternative; boundary=x", "--x", "", "", 415},
		{"none", "", "x", "", "", 415},
		{"malformed type", "text/", "x", "", "", 400},
		{"latin-1 bytes", "text/plain; charset=ISO-8859-1", "caf\xe9", "", "", 400},
		{"control char", "text/plain", "bell\x07", "", "", 400},
		{"U+FFFE", "text/plain", "x\uFFFEy", "", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, e := extractText(tc.ct, []byte(tc.body))
			if tc.status != 0 {
				if e == nil || e.Status != tc.status {
					t.Fatalf("got %+v, %v; want status %d", got, e, tc.status)
				}
				if tc.status == 415 && (len(e.Headers) != 1 || e.Headers[0].Value() != "text/plain, message/cpim") {
					t.Errorf("415 without Accept: %v", e.Headers)
				}
				return
			}
			if e != nil {
				t.Fatalf("refused: %v", e)
			}
			if got.Body != tc.want || got.Lang != tc.lang {
				t.Errorf("got %q (lang %q), want %q (lang %q)", got.Body, got.Lang, tc.want, tc.lang)
			}
		})
	}
}

func TestCleanReasonAndHeaderSafe(t *testing.T) {
	if got := cleanReason("a\r\nb\tc  d"); got != "a b c d" {
		t.Errorf("cleanReason %q", got)
	}
	if got := cleanReason(strings.Repeat("é", 300)); len(got) > maxReasonLen {
		t.Errorf("cleanReason kept %d bytes", len(got))
	}
	if got := headerSafe("subject\r\nX-Evil: 1"); got != "subject X-Evil: 1" {
		t.Errorf("headerSafe %q", got)
	}
	if got := firstLanguage("de-DE, en"); got != "de-DE" {
		t.Errorf("firstLanguage %q", got)
	}
	if got := firstLanguage("de;q=1\r\nX: y"); got != "" {
		t.Errorf("firstLanguage %q", got)
	}
}

func TestSplitAddressList(t *testing.T) {
	got := splitAddressList(`"Doe, John" <sip:j@x.test>, <tel:+1;a=b,c>, sip:k@y.test`)
	want := []string{`"Doe, John" <sip:j@x.test>`, `<tel:+1;a=b,c>`, `sip:k@y.test`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}
