package address

import "errors"

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

// Mapper converts addresses using the domains of a Config.
type Mapper struct{ cfg Config }

// ErrUnmappable means the address has no counterpart under this Config
// (for example a foreign SIP domain while no gateway domain is set).
var ErrUnmappable = errors.New("address: no mapping for this address")

// ErrMalformed means the input is not a valid JID or SIP URI.
var ErrMalformed = errors.New("address: malformed address")

// NewMapper validates and normalises c (lower case, IDNA).
func NewMapper(c Config) (*Mapper, error) { panic("unimplemented") }

// ParseJID maps any JID to its neutral Address. A JID in XMPPGateway is
// unescaped (XEP-0106) and split at its last '@'.
func (m *Mapper) ParseJID(jid string) (Address, error) { panic("unimplemented") }

// JIDOfSIPUser renders a SIP user as the JID the component speaks for:
// transparent for SIPDomains, escaped under XMPPGateway otherwise.
func (m *Mapper) JIDOfSIPUser(a Address) (string, error) { panic("unimplemented") }

// JIDOfXMPPUser renders an XMPP user's own JID (localpart escaped).
func (m *Mapper) JIDOfXMPPUser(a Address) (string, error) { panic("unimplemented") }

// ParseSIPURI maps a sip:/sips: URI (with or without <>, display name or
// header parameters) to its neutral Address. A URI in SIPGateway is
// percent-decoded and split at its last '@'; ;gr= becomes the resource.
func (m *Mapper) ParseSIPURI(uri string) (Address, error) { panic("unimplemented") }

// URIOfXMPPUser renders an XMPP user as the SIP URI sipside speaks for:
// transparent for XMPPDomains, under SIPGateway otherwise.
func (m *Mapper) URIOfXMPPUser(a Address) (string, error) { panic("unimplemented") }

// URIOfSIPUser renders a SIP user's own URI (user part percent-encoded).
func (m *Mapper) URIOfSIPUser(a Address) (string, error) { panic("unimplemented") }

// ServesXMPPDomain reports whether domain is one sipside speaks for (an
// XMPPDomains entry or SIPGateway): a SIP request claiming an identity
// there is forged.
func (m *Mapper) ServesXMPPDomain(domain string) bool { panic("unimplemented") }

// ServesSIPDomain reports whether domain is one the component speaks for
// (a SIPDomains entry or XMPPGateway).
func (m *Mapper) ServesSIPDomain(domain string) bool { panic("unimplemented") }
