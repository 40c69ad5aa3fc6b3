package address

import (
	"errors"
	"testing"
)

func TestEscapeLocal(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{` "&'/:<>@`, `\20\22\26\27\2f\3a\3c\3e\40`},
		{`c:\net`, `c\3a\net`},
		{`c:\\net`, `c\3a\\net`},
		{`c:\cool stuff`, `c\3a\cool\20stuff`},
		{`c:\5commas`, `c\3a\5c5commas`},
		{`\3and\2is\5cool`, `\5c3and\2is\5c5cool`}, // XEP-0106 §4.4 wv: example
		{`\2F`, `\5c2F`},
		{`\`, `\`},
		{`\2`, `\2`},
		{`\\20`, `\\5c20`},
		{"é", "é"},
	}
	for _, tt := range tests {
		if got := EscapeLocal(tt.in); got != tt.want {
			t.Errorf("EscapeLocal(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := UnescapeLocal(tt.want); got != tt.in {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", tt.want, got, tt.in)
		}
	}
}

func TestUnescapeLocalOnlyDefinedSequences(t *testing.T) {
	tests := []struct{ in, want string }{
		{`\2plus\2is\4`, `\2plus\2is\4`},
		{`foo\bar`, `foo\bar`},
		{`foob\41r`, `foob\41r`},
		{`a\2Fb`, `a\2Fb`}, // case is significant
		{`\5c20`, `\20`},
		{`\5c5c`, `\5c`},
		{`x\4`, `x\4`},
		{`x\40`, `x@`},
	}
	for _, tt := range tests {
		if got := UnescapeLocal(tt.in); got != tt.want {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPercent(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"-_.!~*'()&=+$,;?/", "-_.!~*'()&=+$,;?/"},
		{` "#%:<>@[\]^{|}`, `%20%22%23%25%3A%3C%3E%40%5B%5C%5D%5E%7B%7C%7D`},
		{"é☃", "%C3%A9%E2%98%83"},
	}
	for _, tt := range tests {
		if got := PercentEncodeUser(tt.in); got != tt.want {
			t.Errorf("PercentEncodeUser(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got, err := PercentDecode(tt.want); err != nil || got != tt.in {
			t.Errorf("PercentDecode(%q) = %q, %v; want %q", tt.want, got, err, tt.in)
		}
	}
	if got := percentEncodeParam("urn:uuid:[1]/a&b+$;c=d e"); got != "urn:uuid:[1]/a&b+$%3Bc%3Dd%20e" {
		t.Errorf("percentEncodeParam = %q", got)
	}
	for _, bad := range []string{"%", "%4", "%4g", "a%zz", "%C3", "\xff", "%ED%A0%80"} {
		if got, err := PercentDecode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("PercentDecode(%q) = %q, %v; want ErrMalformed", bad, got, err)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"Example.COM.", "example.com"},
		{"xn--caf-dma.example", "café.example"},
		{"CAFÉ.example", "café.example"},
		{"ｅｘａｍｐｌｅ.com", "example.com"},
		{"faß.de", "faß.de"}, // IDNA2008, not transitional
		{"localhost", "localhost"},
		{"192.0.2.1", "192.0.2.1"},
		{"[2001:DB8:0:0::1]", "[2001:db8::1]"},
	}
	for _, tt := range tests {
		if got, err := NormalizeDomain(tt.in); err != nil || got != tt.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", ".", "a..b", "-a.b", "a_b.c", "a b", "xn--zz", "1.2.3", "010.0.0.1",
		"::1", "[::ffff:1.2.3.4]", "[fe80::1%eth0]", "[::1", "\xff.com", "a\x00b",
		"a.b.c." + string(make([]byte, 300))} {
		if got, err := NormalizeDomain(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want ErrMalformed", bad, got, err)
		}
	}
	if a, err := asciiDomain("café.example"); err != nil || a != "xn--caf-dma.example" {
		t.Errorf("asciiDomain = %q, %v", a, err)
	}
}
