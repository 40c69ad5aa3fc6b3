package address

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// checkAddress validates an Address handed to a renderer and returns its
// normalised domain. User and Resource must be valid UTF-8 without control
// characters: ParseSIPURI refuses those too, so every Address a renderer
// accepts can come back through the parsers.
func checkAddress(a Address) (string, error) {
	if err := checkText("user", a.User); err != nil {
		return "", err
	}
	if err := checkText("resource", a.Resource); err != nil {
		return "", err
	}
	return NormalizeDomain(a.Domain)
}

// checkText refuses invalid UTF-8 and control characters (C0, DEL, C1). No
// identity needs them, and a decoded %0D%0A is only good for injecting
// lines into logs or headers further down.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrMalformed, what, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s %q contains control character %U", ErrMalformed, what, s, r)
		}
	}
	return nil
}
