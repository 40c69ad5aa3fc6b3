package address

import (
	"fmt"
	"strings"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
	mjid "mellium.im/xmpp/jid"
)

// maxJIDLen is the longest JID string: three parts of at most 1023 bytes
// and two separators (RFC 7622 §3.1). Longer input is refused before any
// Unicode processing.
const maxJIDLen = 3*1023 + 2

// userFold applies the mapping steps of PRECIS UsernameCaseMapped (width
// fold, lower case, NFC) without its IdentifierClass check, so that it
// accepts the characters XEP-0106 escapes (space in particular). The
// Mapper folds the unescaped user with it before escaping: folding after
// escaping could turn a full-width "＼２０" into the sequence "\20".
var userFold = precis.NewFreeform(precis.FoldWidth, precis.LowerCase(), precis.Norm(norm.NFC))

// ParseJID maps any JID to its neutral Address. A JID in XMPPGateway is
// unescaped (XEP-0106) and split at its last '@'.
//
// The JID is first enforced with PRECIS (RFC 7622), so User comes back
// case-folded. ParseJID accepts only the canonical JID of an address, the
// one JIDOfSIPUser (for domains the component serves) or JIDOfXMPPUser
// (for any other domain) renders for the Address it returns: a JID with a
// needless "\5c", a leading or trailing "\20", or a gateway localpart that
// names its domain with an A-label or names a SIPDomains domain is
// ErrMalformed. Accepting such aliases would let two JIDs reach one SIP
// user, and answers would come back from a JID the client does not know
// (XEP-0106 §7, ADDR-03). A gateway JID naming a domain sipside serves is
// ErrUnmappable (it would loop back through sipside). A domain-only JID,
// including XMPPGateway itself, maps to an Address with an empty User.
func (m *Mapper) ParseJID(jid string) (Address, error) {
	if len(jid) > maxJIDLen {
		return Address{}, fmt.Errorf("%w: JID of %d bytes is longer than %d", ErrMalformed, len(jid), maxJIDLen)
	}
	j, err := mjid.Parse(jid)
	if err != nil {
		return Address{}, fmt.Errorf("%w: JID %q: %v", ErrMalformed, jid, err)
	}
	domain := j.Domainpart()
	a := Address{Domain: domain, Resource: j.Resourcepart()}
	if local := j.Localpart(); local != "" {
		a.User = UnescapeLocal(local)
		if domain == m.cfg.XMPPGateway {
			if a, err = splitGatewayUser(a.User, a.Resource); err != nil {
				return Address{}, fmt.Errorf("gateway JID %q: %w", jid, err)
			}
			if err := m.checkSIPUser(a.User, a.Domain); err != nil {
				return Address{}, fmt.Errorf("gateway JID %q: %w", jid, err)
			}
		}
	}
	// Rendering back is the canonical-form check; it also normalises the
	// domain the same way the renderers do.
	render := m.JIDOfXMPPUser
	if m.servesSIP(domain) {
		render = m.JIDOfSIPUser
	}
	want := j.String()
	got, err := render(a)
	if err != nil {
		return Address{}, fmt.Errorf("%w: JID %q has no canonical form: %v", ErrMalformed, want, err)
	}
	if got != want {
		return Address{}, fmt.Errorf("%w: JID %q is not in canonical form %q", ErrMalformed, want, got)
	}
	return a, nil
}

// splitGatewayUser splits an unescaped gateway localpart "user@domain" at
// its last '@' (the user may hold '@' itself, the domain cannot).
func splitGatewayUser(user, resource string) (Address, error) {
	i := strings.LastIndexByte(user, '@')
	if i < 0 {
		return Address{}, fmt.Errorf("%w: localpart %q has no '@' before the SIP domain", ErrMalformed, user)
	}
	if i == 0 {
		return Address{}, fmt.Errorf("%w: localpart %q has an empty SIP user", ErrMalformed, user)
	}
	d, err := NormalizeDomain(user[i+1:])
	if err != nil {
		return Address{}, fmt.Errorf("SIP domain in localpart: %w", err)
	}
	return Address{User: user[:i], Domain: d, Resource: resource}, nil
}

// JIDOfSIPUser renders a SIP user as the JID the component speaks for:
// transparent for SIPDomains, escaped under XMPPGateway otherwise.
//
// User is folded (PRECIS width and case mapping, NFC), then escaped
// (XEP-0106); "Alice" and "alice" thus share one JID, and keeping the
// original spelling for the way back is the caller's job (ADDR-02). A user
// that PRECIS refuses, that would start or end with "\20", or whose JID
// would exceed the RFC 7622 limits is ErrUnmappable, as is a resource that
// PRECIS OpaqueString would change (a GRUU must come back byte for byte).
// A domain-only Address maps to the domain's JID when the component serves
// the domain (including XMPPGateway itself). A user in a domain sipside
// serves (XMPPDomains, SIPGateway) is ErrUnmappable: every user there is
// an XMPP user, and the JID would route a message through both gateways.
func (m *Mapper) JIDOfSIPUser(a Address) (string, error) {
	domain, err := checkAddress(a)
	if err != nil {
		return "", err
	}
	if err := m.checkSIPUser(a.User, domain); err != nil {
		return "", err
	}
	gw := m.cfg.XMPPGateway
	switch _, transparent := m.sipDomains[domain]; {
	case transparent:
		return makeJID(a.User, "", domain, a.Resource)
	case gw == "":
		return "", fmt.Errorf("%w: SIP domain %q is not served and no XMPP gateway domain is set", ErrUnmappable, domain)
	case a.User == "" && domain == gw:
		return makeJID("", "", gw, a.Resource)
	case a.User == "":
		return "", fmt.Errorf("%w: SIP domain %q without a user cannot be addressed through the gateway", ErrUnmappable, domain)
	default:
		return makeJID(a.User, "@"+domain, gw, a.Resource)
	}
}

// JIDOfXMPPUser renders an XMPP user's own JID (localpart escaped).
//
// Case and escaping follow JIDOfSIPUser. A user in a domain the component
// serves (SIPDomains, XMPPGateway) is ErrUnmappable: every user there is a
// SIP user.
func (m *Mapper) JIDOfXMPPUser(a Address) (string, error) {
	domain, err := checkAddress(a)
	if err != nil {
		return "", err
	}
	if err := m.checkXMPPUser(a.User, domain); err != nil {
		return "", err
	}
	return makeJID(a.User, "", domain, a.Resource)
}

// makeJID builds the JID whose localpart is the escaped form of
// fold(user)+suffix (suffix is "@domain" for gateway JIDs, whose domain
// is already normalised) and checks that PRECIS leaves every part as built,
// so that ParseJID returns exactly what was rendered.
func makeJID(user, suffix, domain, resource string) (string, error) {
	var local string
	if user != "" {
		folded, err := userFold.String(user)
		if err != nil {
			return "", fmt.Errorf("%w: user %q: %v", ErrUnmappable, user, err)
		}
		if folded == "" {
			// Never expected; it would turn a user into its domain's JID.
			return "", fmt.Errorf("%w: user %q folds to nothing", ErrUnmappable, user)
		}
		local = EscapeLocal(folded + suffix)
		if strings.HasPrefix(local, `\20`) || strings.HasSuffix(local, `\20`) {
			// XEP-0106 §3.2: \20 must not start or end a localpart.
			return "", fmt.Errorf("%w: user %q would start or end its JID localpart with a space", ErrUnmappable, user)
		}
	}
	j, err := mjid.New(local, domain, resource)
	if err != nil {
		return "", fmt.Errorf("%w: user %q at %q: %v", ErrUnmappable, user, domain, err)
	}
	switch {
	case j.Localpart() != local:
		return "", fmt.Errorf("%w: user %q: PRECIS changes localpart %q to %q", ErrUnmappable, user, local, j.Localpart())
	case j.Domainpart() != domain:
		return "", fmt.Errorf("%w: PRECIS changes domain %q to %q", ErrUnmappable, domain, j.Domainpart())
	case j.Resourcepart() != resource:
		return "", fmt.Errorf("%w: PRECIS changes resource %q to %q", ErrUnmappable, resource, j.Resourcepart())
	}
	return j.String(), nil
}
