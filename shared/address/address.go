// Package address maps user addresses between XMPP (JIDs) and SIP (URIs)
// per RFC 7247 §6 (called §3 in the drafts) and XEP-0106 JID escaping.
//
// The neutral form is Address: the user's real identity, independent of the
// protocol it is written in. A JID and a SIP URI for the same user both map
// to the same Address; each side of Parley converts its protocol's form to
// and from it. All functions are pure, and a Mapper is immutable, so one
// may be shared by all goroutines.
//
// Rules that hold throughout:
//
//   - Domains. Address.Domain is always in NormalizeDomain's form: lower
//     case, no trailing dot, IDNs as U-labels, which is what JIDs carry
//     (RFC 7622 §3.2), so the XMPP side needs no conversion. SIP URIs are
//     rendered with A-labels, for the host and for the domain inside a
//     SIPGateway user part alike (R7247-03); both parsers accept either.
//   - Case. Address.User is what the protocol gave. ParseSIPURI keeps the
//     SIP user's case (user parts are case-sensitive, RFC 3261 §19.1.4);
//     JIDs are PRECIS-enforced, so ParseJID returns the folded user, and
//     the JID renderers fold (UsernameCaseMapped: width, case, NFC) before
//     escaping. sip:Alice@d thus becomes alice@d, which comes back as
//     sip:alice@d; remembering "Alice" is the caller's policy (ADDR-02).
//   - One JID per address. ParseJID accepts only the JID the renderers
//     produce for the Address it returns; other spellings of it (a
//     needless "\5c", an A-label inside a gateway localpart) are refused
//     rather than aliased (XEP-0106 §7).
//   - Resources travel byte for byte as the SIP ;gr= parameter; one that
//     PRECIS would alter is unmappable.
//   - No hairpins. A SIP user in a domain sipside serves, or an XMPP user
//     in a domain the component serves, is unmappable.
//   - Errors. ErrMalformed: not a valid JID, URI or Address (SIP 400).
//     ErrUnmappable: valid, but without a counterpart under this Config
//     (SIP 404). Both are jid-malformed on the XMPP side (ERR-05).
//
// It must not know about stanzas, SIP messages or the network.
package address

import "strings"

// Address is a user's identity in neutral form: an unescaped user part (the
// SIP user, percent-decoded; the JID localpart, XEP-0106-unescaped), a
// domain as NormalizeDomain returns it (lower case, U-labels), and an
// optional resource (XMPP resourcepart ⇄ SIP GRUU "gr" parameter). An
// empty User names the domain itself (a server, not a user).
type Address struct {
	User     string `json:"user"`
	Domain   string `json:"domain"`
	Resource string `json:"resource,omitempty"`
}

// Bare drops the resource.
func (a Address) Bare() Address { return Address{User: a.User, Domain: a.Domain} }

// String renders user@domain/resource for logs; it is not a JID or a URI.
func (a Address) String() string {
	var b strings.Builder
	if a.User != "" {
		b.WriteString(a.User)
		b.WriteByte('@')
	}
	b.WriteString(a.Domain)
	if a.Resource != "" {
		b.WriteByte('/')
		b.WriteString(a.Resource)
	}
	return b.String()
}

// IsZero reports whether a is the zero Address.
func (a Address) IsZero() bool { return a == Address{} }
