package address

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// RFC 3261 §25.1: unreserved = alphanum / mark, with
// mark = - _ . ! ~ * ' ( ).
const sipMark = "-_.!~*'()"

const (
	// userChars is what the RFC 3261 `user` rule allows unescaped besides
	// alphanum: mark / user-unreserved (& = + $ , ; ? /).
	userChars = sipMark + "&=+$,;?/"
	// paramChars is what `paramchar` allows unescaped besides alphanum:
	// mark / param-unreserved ([ ] / : & + $). Used for the gr parameter.
	paramChars = sipMark + "[]/:&+$"
)

// allowed reports whether c may appear unescaped: an ASCII letter or digit
// or one of extra.
func allowed(c byte, extra string) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte(extra, c) >= 0
}

// PercentEncodeUser encodes s for the RFC 3261 `user` rule (R7247-05):
// unreserved and user-unreserved characters stay, every other byte,
// including each byte of a non-ASCII character's UTF-8 form, becomes %XX
// with upper-case hex (RFC 3986 §2.1).
func PercentEncodeUser(s string) string { return percentEncode(s, userChars) }

// percentEncodeParam encodes s for a URI parameter value (`paramchar`).
func percentEncodeParam(s string) string { return percentEncode(s, paramChars) }

func percentEncode(s, keep string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !allowed(s[i], keep) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if allowed(c, keep) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// PercentDecode decodes %XX escapes (either hex case). A '%' not followed
// by two hex digits, or a result that is not valid UTF-8, is ErrMalformed:
// R7247-07 says the gateway must refuse such a URI rather than guess.
func PercentDecode(s string) (string, error) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("%w: invalid UTF-8 in %q", ErrMalformed, s)
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("%w: bad percent-encoding at byte %d of %q", ErrMalformed, i, s)
		}
		b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: %q decodes to invalid UTF-8", ErrMalformed, s)
	}
	return string(b), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// checkEscaped reports whether raw, a still-encoded URI component, holds
// only the bytes keep allows plus %-escapes and (leniently, since some
// peers send them unencoded) non-ASCII bytes. Anything else in raw would
// mean the component was cut at the wrong place or is not a URI at all.
func checkEscaped(raw, what, keep string) error {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if allowed(c, keep) || c == '%' || c >= 0x80 {
			continue
		}
		return fmt.Errorf("%w: character %q not allowed in %s %q", ErrMalformed, c, what, raw)
	}
	return nil
}
