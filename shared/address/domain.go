package address

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// maxDomainLen bounds a domain before any IDNA work; the A-label form is
// further limited to 253 octets by VerifyDNSLength.
const maxDomainLen = 1023

// idnaProfile is the one IDNA2008 profile used for every domain, both ways,
// so that NormalizeDomain and asciiDomain always agree: UTS #46 lookup
// mapping (case, width), non-transitional (ß stays ß), STD3 letters, digits
// and hyphen only, Bidi rule, DNS lengths. It is immutable, hence not
// mutable global state.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
)

// NormalizeDomain returns the form of a domain that Address carries: one
// trailing dot removed (RFC 7622 §3.2), case and width mapped, and IDNs as
// U-labels (RFC 7622 requires U-labels in JIDs, so the JID side needs no
// conversion; SIP URIs get A-labels from the renderers, R7247-03). Either
// label form is accepted. IP literals are allowed as IPv4 dotted quads and
// bracketed IPv6, both in their canonical text form.
//
// Invalid domains are ErrMalformed.
func NormalizeDomain(d string) (string, error) {
	if d == "" {
		return "", fmt.Errorf("%w: empty domain", ErrMalformed)
	}
	if !utf8.ValidString(d) {
		return "", fmt.Errorf("%w: domain %q is not valid UTF-8", ErrMalformed, d)
	}
	if len(d) > maxDomainLen {
		return "", fmt.Errorf("%w: domain of %d bytes is too long", ErrMalformed, len(d))
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" || strings.HasSuffix(d, ".") {
		// idna skips an empty last label, so catch "a.." here.
		return "", fmt.Errorf("%w: empty label in domain %q", ErrMalformed, d+".")
	}
	if strings.HasPrefix(d, "[") {
		return normalizeIPv6(d)
	}
	if ip, err := netip.ParseAddr(d); err == nil {
		if !ip.Is4() {
			return "", fmt.Errorf("%w: IPv6 domain %q must be in brackets", ErrMalformed, d)
		}
		return ip.String(), nil
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrMalformed, d, err)
	}
	if last := a[strings.LastIndexByte(a, '.')+1:]; allDigits(last) {
		// RFC 1123 §2.1: a top-level label is never all-numeric, so this is
		// a mistyped IPv4 address (e.g. "010.0.0.1"), not a host name.
		return "", fmt.Errorf("%w: domain %q is neither a host name nor an IPv4 address", ErrMalformed, d)
	}
	u, err := idnaProfile.ToUnicode(a)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrMalformed, d, err)
	}
	return u, nil
}

func normalizeIPv6(d string) (string, error) {
	if len(d) < 2 || d[len(d)-1] != ']' {
		return "", fmt.Errorf("%w: unterminated IPv6 literal %q", ErrMalformed, d)
	}
	ip, err := netip.ParseAddr(d[1 : len(d)-1])
	// A zone is local to one host and an IPv4-mapped address is an IPv4
	// address; neither names a domain.
	if err != nil || !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
		return "", fmt.Errorf("%w: bad IPv6 literal %q", ErrMalformed, d)
	}
	return "[" + ip.String() + "]", nil
}

// asciiDomain converts a domain that NormalizeDomain produced to the
// A-label form SIP URIs carry (R7247-08: IDNA ToASCII).
func asciiDomain(d string) (string, error) {
	if strings.HasPrefix(d, "[") || isIPv4(d) {
		return d, nil
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrMalformed, d, err)
	}
	return a, nil
}

func isIPv4(d string) bool {
	ip, err := netip.ParseAddr(d)
	return err == nil && ip.Is4()
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
