package address

import (
	"fmt"
	"strings"
)

// trimLWS removes the linear white space (SP, HTAB) SIP allows around a
// name-addr.
func trimLWS(s string) string { return strings.Trim(s, " \t") }

// stripNameAddr returns the URI inside a name-addr (`"Alice" <sip:…>;tag=x`,
// `Alice <sip:…>`, `<sip:…>`), or s itself when it is a bare URI. The
// display name and any header parameters after '>' are checked for shape
// and dropped: Address has no place for them.
func stripNameAddr(s string) (string, error) {
	s = trimLWS(s)
	if s == "" {
		return "", fmt.Errorf("%w: empty SIP address", ErrMalformed)
	}
	if s[0] == '"' {
		end, err := quotedStringEnd(s)
		if err != nil {
			return "", err
		}
		rest := strings.TrimLeft(s[end:], " \t")
		if !strings.HasPrefix(rest, "<") {
			return "", fmt.Errorf("%w: display name not followed by <URI> in %q", ErrMalformed, s)
		}
		return insideAngles(rest)
	}
	i := strings.IndexByte(s, '<')
	if i < 0 {
		return s, nil
	}
	if j := strings.IndexAny(s[:i], "\">"); j >= 0 {
		return "", fmt.Errorf("%w: character %q in display name of %q", ErrMalformed, s[j], s)
	}
	if err := checkNoControls(s[:i], "display name"); err != nil {
		return "", err
	}
	return insideAngles(s[i:])
}

// quotedStringEnd returns the index just past the quoted-string that
// starts s, honouring quoted-pairs (\").
func quotedStringEnd(s string) (int, error) {
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++ // skip the quoted character; an unterminated pair ends the loop
			if i < len(s) && (s[i] == '\r' || s[i] == '\n') {
				// RFC 3261 quoted-pair excludes CR and LF.
				return 0, fmt.Errorf("%w: line break in display name", ErrMalformed)
			}
		case c == '"':
			return i + 1, nil
		case c < ' ' && c != '\t' || c == 0x7f:
			return 0, fmt.Errorf("%w: control character in display name", ErrMalformed)
		}
	}
	return 0, fmt.Errorf("%w: unterminated quoted display name in %q", ErrMalformed, s)
}

// insideAngles takes "<uri>tail" and returns uri; tail may only be header
// parameters (";tag=…").
func insideAngles(s string) (string, error) {
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return "", fmt.Errorf("%w: missing '>' in %q", ErrMalformed, s)
	}
	tail := strings.TrimLeft(s[end+1:], " \t")
	if tail != "" && tail[0] != ';' {
		return "", fmt.Errorf("%w: unexpected %q after '>'", ErrMalformed, tail)
	}
	if err := checkNoControls(tail, "header parameters"); err != nil {
		return "", err
	}
	return s[1:end], nil
}

func checkNoControls(s, what string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("%w: control character %q in %s", ErrMalformed, c, what)
		}
	}
	return nil
}
