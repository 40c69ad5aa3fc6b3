package address

import (
	"errors"
	"fmt"
	"strings"
)

// Config names the domains Parley serves on each side.
type Config struct {
	// SIPDomains are the XMPP domains the component serves, each standing
	// for the SIP domain of the same name (transparent mode):
	// bob@sip.test ⇄ sip:bob@sip.test.
	SIPDomains []string
	// XMPPGateway, optional, is the component's gateway domain for every
	// other SIP domain: bob\40fabrikam.com@XMPPGateway ⇄ sip:bob@fabrikam.com.
	XMPPGateway string
	// XMPPDomains are the SIP domains sipside serves, each standing for the
	// XMPP domain of the same name: sip:alice@xmpp.test ⇄ alice@xmpp.test.
	XMPPDomains []string
	// SIPGateway, optional, is sipside's gateway domain for every other XMPP
	// domain: sip:alice%40jabber.org@SIPGateway ⇄ alice@jabber.org.
	SIPGateway string
}

// Mapper converts addresses using the domains of a Config. It is
// immutable once built, so one Mapper may be shared by any number of
// goroutines. The zero Mapper serves no domain.
type Mapper struct {
	cfg         Config              // normalised copy
	sipDomains  map[string]struct{} // cfg.SIPDomains as a set
	xmppDomains map[string]struct{} // cfg.XMPPDomains as a set
}

// ErrUnmappable means the address has no counterpart under this Config
// (for example a foreign SIP domain while no gateway domain is set).
var ErrUnmappable = errors.New("address: no mapping for this address")

// ErrMalformed means the input is not a valid JID or SIP URI.
var ErrMalformed = errors.New("address: malformed address")

// ErrConfig means NewMapper refused its Config. The error also wraps
// ErrMalformed when a domain itself is invalid.
var ErrConfig = errors.New("address: invalid configuration")

// NewMapper validates and normalises c (lower case, IDNA).
//
// Every domain is trimmed and passed through NormalizeDomain; duplicates
// within a list are merged. A domain may be served by only one side: one
// that is both an XMPP domain of the component (SIPDomains, XMPPGateway)
// and a SIP domain of sipside (XMPPDomains, SIPGateway) would make each
// side claim the other's users and loop, so it is refused, as is a gateway
// domain also listed as a transparent domain of its own side (bob@gw would
// be both a transparent user and a malformed gateway JID).
func NewMapper(c Config) (*Mapper, error) {
	m := &Mapper{sipDomains: map[string]struct{}{}, xmppDomains: map[string]struct{}{}}
	var err error
	if m.cfg.SIPDomains, err = normalizeList("SIPDomains", c.SIPDomains, m.sipDomains); err != nil {
		return nil, err
	}
	if m.cfg.XMPPDomains, err = normalizeList("XMPPDomains", c.XMPPDomains, m.xmppDomains); err != nil {
		return nil, err
	}
	if m.cfg.XMPPGateway, err = normalizeOptional("XMPPGateway", c.XMPPGateway); err != nil {
		return nil, err
	}
	if m.cfg.SIPGateway, err = normalizeOptional("SIPGateway", c.SIPGateway); err != nil {
		return nil, err
	}
	if err := m.checkSides(); err != nil {
		return nil, err
	}
	return m, nil
}

func normalizeList(field string, in []string, set map[string]struct{}) ([]string, error) {
	var out []string
	for i, d := range in {
		n, err := NormalizeDomain(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("%w: %s[%d] %q: %w", ErrConfig, field, i, d, err)
		}
		if _, dup := set[n]; dup {
			continue
		}
		set[n] = struct{}{}
		out = append(out, n)
	}
	return out, nil
}

func normalizeOptional(field, d string) (string, error) {
	d = strings.TrimSpace(d)
	if d == "" {
		return "", nil
	}
	n, err := NormalizeDomain(d)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %w", ErrConfig, field, d, err)
	}
	return n, nil
}

// checkSides refuses a domain claimed by both sides, or a gateway domain
// listed among its own side's transparent domains.
func (m *Mapper) checkSides() error {
	c := &m.cfg
	if _, ok := m.sipDomains[c.XMPPGateway]; ok {
		return fmt.Errorf("%w: XMPPGateway %q is also listed in SIPDomains", ErrConfig, c.XMPPGateway)
	}
	if _, ok := m.xmppDomains[c.SIPGateway]; ok {
		return fmt.Errorf("%w: SIPGateway %q is also listed in XMPPDomains", ErrConfig, c.SIPGateway)
	}
	for d := range m.sipDomains {
		if m.servesXMPP(d) {
			return bothSides(d)
		}
	}
	if c.XMPPGateway != "" && m.servesXMPP(c.XMPPGateway) {
		return bothSides(c.XMPPGateway)
	}
	return nil
}

func bothSides(d string) error {
	return fmt.Errorf("%w: domain %q is configured on both sides "+
		"(SIPDomains/XMPPGateway and XMPPDomains/SIPGateway)", ErrConfig, d)
}

// checkSIPUser refuses a SIP user in a domain sipside serves: every user
// there is an XMPP user, so the address would hairpin through both
// gateways. A domain-only address names a server, not a user, and passes.
func (m *Mapper) checkSIPUser(user, domain string) error {
	if user != "" && m.servesXMPP(domain) {
		return fmt.Errorf("%w: %q is served by sipside for XMPP users, so %q cannot be a SIP user", ErrUnmappable, domain, user)
	}
	return nil
}

// checkXMPPUser is checkSIPUser for the other side.
func (m *Mapper) checkXMPPUser(user, domain string) error {
	if user != "" && m.servesSIP(domain) {
		return fmt.Errorf("%w: %q is served by the component for SIP users, so %q cannot be an XMPP user", ErrUnmappable, domain, user)
	}
	return nil
}

// ServesXMPPDomain reports whether domain is one sipside speaks for (an
// XMPPDomains entry or SIPGateway): a SIP request claiming an identity
// there is forged.
func (m *Mapper) ServesXMPPDomain(domain string) bool {
	d, err := NormalizeDomain(domain)
	return err == nil && m.servesXMPP(d)
}

// ServesSIPDomain reports whether domain is one the component speaks for
// (a SIPDomains entry or XMPPGateway).
func (m *Mapper) ServesSIPDomain(domain string) bool {
	d, err := NormalizeDomain(domain)
	return err == nil && m.servesSIP(d)
}

// servesXMPP and servesSIP take a normalised domain.
func (m *Mapper) servesXMPP(d string) bool {
	_, ok := m.xmppDomains[d]
	return ok || (d == m.cfg.SIPGateway && d != "")
}

func (m *Mapper) servesSIP(d string) bool {
	_, ok := m.sipDomains[d]
	return ok || (d == m.cfg.XMPPGateway && d != "")
}
