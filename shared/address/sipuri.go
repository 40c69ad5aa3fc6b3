package address

import (
	"fmt"
	"strconv"
	"strings"
)

// maxURILen bounds ParseSIPURI's input. It is three times the longest JID
// (every byte percent-encoded) plus room for the scheme and "gr": anything
// a JID can map to fits, and hostile input is refused before any work.
const maxURILen = 3*maxJIDLen + 64

// ParseSIPURI maps a sip:/sips: URI (with or without <>, display name or
// header parameters) to its neutral Address. A URI in SIPGateway is
// percent-decoded and split at its last '@'; ;gr= becomes the resource.
//
// Accepted forms: a bare URI, or a name-addr (`"Alice" <sip:…>` or
// `Alice <sip:…>`) optionally followed by header parameters such as ;tag=,
// which are ignored. Following R7247-07 the scheme (sip and sips alike),
// port, URI parameters other than gr, and headers are dropped. User keeps
// the case the URI gave (RFC 3261 §19.1.4: user parts are case-sensitive);
// the JID renderers fold it. The host, and the domain inside a SIPGateway
// user, are normalised by NormalizeDomain (lower case, A-label to U-label).
//
// ErrMalformed: a password in the userinfo, a character the user part
// does not allow unescaped, bad percent-encoding, invalid UTF-8 or a
// control character once decoded, a bad host or port, a repeated gr, or a
// SIPGateway user without "@domain". ErrUnmappable: a tel: URI (not mapped
// yet), or a SIPGateway user naming a domain the component serves (it would
// loop back through the component). Any other scheme is ErrMalformed.
func (m *Mapper) ParseSIPURI(uri string) (Address, error) {
	if len(uri) > maxURILen {
		return Address{}, fmt.Errorf("%w: SIP URI of %d bytes is longer than %d", ErrMalformed, len(uri), maxURILen)
	}
	inner, err := stripNameAddr(uri)
	if err != nil {
		return Address{}, err
	}
	p, err := splitSIPURI(inner)
	if err != nil {
		return Address{}, fmt.Errorf("SIP URI %q: %w", inner, err)
	}
	a, err := p.address()
	if err != nil {
		return Address{}, fmt.Errorf("SIP URI %q: %w", inner, err)
	}
	if p.hasUser && a.Domain == m.cfg.SIPGateway {
		if a, err = splitGatewayUser(a.User, a.Resource); err != nil {
			return Address{}, fmt.Errorf("gateway SIP URI %q: %w", inner, err)
		}
		if err := m.checkXMPPUser(a.User, a.Domain); err != nil {
			return Address{}, fmt.Errorf("gateway SIP URI %q: %w", inner, err)
		}
	}
	return a, nil
}

// sipURIParts holds the still-encoded pieces of a SIP URI that matter.
type sipURIParts struct {
	user    string // raw user, percent-encoded
	hasUser bool
	host    string // without port
	gr      string // raw gr value, percent-encoded; "" if none or valueless
}

// address decodes and normalises the parts.
func (p sipURIParts) address() (Address, error) {
	var a Address
	var err error
	if a.Domain, err = NormalizeDomain(p.host); err != nil {
		return Address{}, fmt.Errorf("host: %w", err)
	}
	if p.hasUser {
		if a.User, err = PercentDecode(p.user); err != nil {
			return Address{}, fmt.Errorf("user: %w", err)
		}
	}
	if a.Resource, err = PercentDecode(p.gr); err != nil {
		return Address{}, fmt.Errorf("gr parameter: %w", err)
	}
	if err := checkText("user", a.User); err != nil {
		return Address{}, err
	}
	if err := checkText("gr parameter", a.Resource); err != nil {
		return Address{}, err
	}
	return a, nil
}

// splitSIPURI cuts a SIP URI into user, host and gr. The userinfo is cut
// at the '@' first, because the user part may itself hold ';', '?' and '/'
// (user-unreserved) while neither host, parameters nor headers may hold a
// raw '@' (RFC 3261 §25.1).
func splitSIPURI(uri string) (sipURIParts, error) {
	var p sipURIParts
	scheme, rest, ok := strings.Cut(uri, ":")
	switch {
	case !ok:
		return p, fmt.Errorf("%w: no URI scheme", ErrMalformed)
	case strings.EqualFold(scheme, "sip"), strings.EqualFold(scheme, "sips"):
	case strings.EqualFold(scheme, "tel"):
		return p, fmt.Errorf("%w: tel: URIs are not mapped", ErrUnmappable)
	default:
		return p, fmt.Errorf("%w: scheme %q is not sip or sips", ErrMalformed, scheme)
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' {
			return p, fmt.Errorf("%w: character %q not allowed in a SIP URI", ErrMalformed, c)
		}
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		p.user, p.hasUser, rest = rest[:at], true, rest[at+1:]
		switch {
		case strings.IndexByte(rest, '@') >= 0:
			return p, fmt.Errorf("%w: more than one '@'", ErrMalformed)
		case strings.IndexByte(p.user, ':') >= 0:
			return p, fmt.Errorf("%w: userinfo holds a password", ErrMalformed)
		case p.user == "":
			return p, fmt.Errorf("%w: empty user before '@'", ErrMalformed)
		}
		if err := checkEscaped(p.user, "user", userChars); err != nil {
			return p, err
		}
	}
	rest, _, _ = strings.Cut(rest, "?") // headers are dropped
	hostport, params, _ := strings.Cut(rest, ";")
	var err error
	if p.host, err = splitHostPort(hostport); err != nil {
		return p, err
	}
	if p.gr, err = findGR(params); err != nil {
		return p, err
	}
	return p, nil
}

// splitHostPort returns the host of host[:port], checking the port.
func splitHostPort(hp string) (string, error) {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", fmt.Errorf("%w: unterminated IPv6 reference %q", ErrMalformed, hp)
		}
		host, port = hp[:end+1], hp[end+1:]
	} else if i := strings.IndexByte(hp, ':'); i >= 0 {
		host, port = hp[:i], hp[i:]
	}
	if host == "" {
		return "", fmt.Errorf("%w: no host", ErrMalformed)
	}
	if port != "" {
		digits := port[1:]
		n, err := strconv.ParseUint(digits, 10, 16)
		if port[0] != ':' || err != nil || len(digits) > 5 || n == 0 {
			return "", fmt.Errorf("%w: bad port %q", ErrMalformed, port)
		}
	}
	return host, nil
}

// findGR returns the raw value of the gr parameter among ';'-separated
// URI parameters (names are case-insensitive, RFC 3261 §19.1.4). A
// valueless ";gr" marks a temporary GRUU (RFC 5627 §3.2) and carries no
// resource. Other parameters are only checked to be non-empty: Lync adds
// its own (;opaque=user:epid:…) and they do not take part in the mapping.
func findGR(params string) (string, error) {
	if params == "" {
		return "", nil
	}
	var gr string
	seen := false
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if name == "" {
			return "", fmt.Errorf("%w: empty URI parameter in %q", ErrMalformed, params)
		}
		if !strings.EqualFold(name, "gr") {
			continue
		}
		if seen {
			return "", fmt.Errorf("%w: gr parameter repeated", ErrMalformed)
		}
		seen = true
		if err := checkEscaped(value, "gr parameter", paramChars); err != nil {
			return "", err
		}
		gr = value
	}
	return gr, nil
}
