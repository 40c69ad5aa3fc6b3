// Package address maps user addresses between XMPP (JIDs) and SIP (URIs)
// per RFC 7247 §6 (called §3 in the drafts) and XEP-0106 JID escaping.
//
// The neutral form is Address: the user's real identity, independent of the
// protocol it is written in. A JID and a SIP URI for the same user both map
// to the same Address; each side of Parley converts its protocol's form to
// and from it. All functions are pure.
//
// It must not know about stanzas, SIP messages or the network.
package address

import "strings"

// Address is a user's identity in neutral form: an unescaped user part (the
// SIP user, percent-decoded; the JID localpart, XEP-0106-unescaped), a
// domain in lower case, and an optional resource (XMPP resourcepart ⇄ SIP
// GRUU "gr" parameter).
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
