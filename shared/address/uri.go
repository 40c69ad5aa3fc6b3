package address

import (
	"fmt"
	"strings"
)

// URIOfXMPPUser renders an XMPP user as the SIP URI sipside speaks for:
// transparent for XMPPDomains, under SIPGateway otherwise.
//
// The user part is percent-encoded for the RFC 3261 user rule and the host
// is an A-label (R7247-05, -08). Under SIPGateway the user part is
// User@Domain with Domain as an A-label too, so that SIP URIs stay ASCII;
// ParseSIPURI accepts either label form there. A resource becomes
// ;gr=<percent-encoded resource> (R7247-06). The case of User is kept. A
// user in a domain the component serves (SIPDomains, XMPPGateway) is
// ErrUnmappable: every user there is a SIP user, and the URI would route a
// request through both gateways.
func (m *Mapper) URIOfXMPPUser(a Address) (string, error) {
	domain, err := checkAddress(a)
	if err != nil {
		return "", err
	}
	if err := m.checkXMPPUser(a.User, domain); err != nil {
		return "", err
	}
	gw := m.cfg.SIPGateway
	switch _, transparent := m.xmppDomains[domain]; {
	case transparent:
		return makeSIPURI(a.User, domain, a.Resource)
	case gw == "":
		return "", fmt.Errorf("%w: XMPP domain %q is not served and no SIP gateway domain is set", ErrUnmappable, domain)
	case a.User == "" && domain == gw:
		return makeSIPURI("", gw, a.Resource)
	case a.User == "":
		return "", fmt.Errorf("%w: XMPP domain %q without a user cannot be addressed through the gateway", ErrUnmappable, domain)
	default:
		ascii, err := asciiDomain(domain)
		if err != nil {
			return "", err
		}
		return makeSIPURI(a.User+"@"+ascii, gw, a.Resource)
	}
}

// URIOfSIPUser renders a SIP user's own URI (user part percent-encoded).
//
// Encoding follows URIOfXMPPUser. A user in a domain sipside serves
// (XMPPDomains, SIPGateway) is ErrUnmappable: every user there is an XMPP
// user.
func (m *Mapper) URIOfSIPUser(a Address) (string, error) {
	domain, err := checkAddress(a)
	if err != nil {
		return "", err
	}
	if err := m.checkSIPUser(a.User, domain); err != nil {
		return "", err
	}
	return makeSIPURI(a.User, domain, a.Resource)
}

// makeSIPURI builds sip:user@host;gr=resource from decoded parts and a
// normalised domain.
func makeSIPURI(user, domain, resource string) (string, error) {
	host, err := asciiDomain(domain)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("sip:")
	if user != "" {
		b.WriteString(PercentEncodeUser(user))
		b.WriteByte('@')
	}
	b.WriteString(host)
	if resource != "" {
		b.WriteString(";gr=")
		b.WriteString(percentEncodeParam(resource))
	}
	if b.Len() > maxURILen {
		return "", fmt.Errorf("%w: SIP URI would be %d bytes, more than %d", ErrUnmappable, b.Len(), maxURILen)
	}
	return b.String(), nil
}
