package address

import (
	"errors"
	"strings"
	"testing"
)

// bothModes serves sip.test transparently, has an XMPP gateway, and on the
// SIP side serves xmpp.test plus a SIP gateway.
var bothModes = Config{
	SIPDomains:  []string{"sip.test"},
	XMPPGateway: "sip.gw.test",
	XMPPDomains: []string{"xmpp.test"},
	SIPGateway:  "xmpp.gw.test",
}

func TestParseSIPURI(t *testing.T) {
	m := mustMapper(t, bothModes)
	tests := []struct {
		in   string
		want Address
		err  error
	}{
		// Forms of the same address.
		{in: "sip:bob@sip.test", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "sips:bob@sip.test", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "SIP:bob@SIP.Test", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "<sip:bob@sip.test>", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "  <sip:bob@sip.test>  ", want: Address{User: "bob", Domain: "sip.test"}},
		{in: `"Bob" <sip:bob@sip.test>`, want: Address{User: "bob", Domain: "sip.test"}},
		{in: `"Bob \"the <Builder>\" @ home"<sip:bob@sip.test>`, want: Address{User: "bob", Domain: "sip.test"}},
		{in: `Bob Builder <sip:bob@sip.test>;tag=38209ebf3e;epid=d6277c8671`, want: Address{User: "bob", Domain: "sip.test"}},
		{in: "sip:bob@sip.test.", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "sip:bob@sip.test:5061;transport=tls", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "sip:bob@sip.test;opaque=user:epid:hYnsEUpJhlGc0T-xd_I7vAAA;gruu", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "sip:bob@sip.test?subject=hi&priority=urgent", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "sip:bob@sip.test;maddr=10.0.0.1?h=x", want: Address{User: "bob", Domain: "sip.test"}},
		// Case of the user is kept; hex case of escapes does not matter.
		{in: "sip:Bob@sip.test", want: Address{User: "Bob", Domain: "sip.test"}},
		{in: "sip:%62%6f%6F@sip.test", want: Address{User: "boo", Domain: "sip.test"}},
		// user-unreserved characters, including ; ? / which also delimit.
		{in: "sip:a;b?c/d&e=f+g$h,i@sip.test;gr=x", want: Address{User: "a;b?c/d&e=f+g$h,i", Domain: "sip.test", Resource: "x"}},
		// gr becomes the resource.
		{in: "sip:bob@sip.test;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
			want: Address{User: "bob", Domain: "sip.test", Resource: "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"}},
		{in: "<sip:bob@sip.test;transport=tcp;GR=desk%20phone>;tag=1", want: Address{User: "bob", Domain: "sip.test", Resource: "desk phone"}},
		{in: "sip:bob@sip.test;gr", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "sip:bob@sip.test;gr=", want: Address{User: "bob", Domain: "sip.test"}},
		// No user: the domain itself.
		{in: "sip:sip.test", want: Address{Domain: "sip.test"}},
		{in: "sip:sip.test:5061;transport=tls;lr", want: Address{Domain: "sip.test"}},
		{in: "sip:xmpp.gw.test", want: Address{Domain: "xmpp.gw.test"}},
		// IDN host, either form, comes back as a U-label.
		{in: "sip:bob@xn--caf-dma.example", want: Address{User: "bob", Domain: "café.example"}},
		{in: "sip:bob@CAFÉ.example", want: Address{User: "bob", Domain: "café.example"}},
		// IP literals.
		{in: "sip:bob@192.0.2.1:5060", want: Address{User: "bob", Domain: "192.0.2.1"}},
		{in: "sip:bob@[2001:DB8:0::1]:5060", want: Address{User: "bob", Domain: "[2001:db8::1]"}},
		// SIP gateway: split at the last '@', embedded domain normalised.
		{in: "sip:alice%40jabber.org@xmpp.gw.test", want: Address{User: "alice", Domain: "jabber.org"}},
		{in: "sip:a%40b%40Jabber.ORG@xmpp.gw.test;gr=pda", want: Address{User: "a@b", Domain: "jabber.org", Resource: "pda"}},
		{in: "sip:alice%40xn--caf-dma.example@xmpp.gw.test", want: Address{User: "alice", Domain: "café.example"}},
		{in: "sip:alice%40caf%C3%A9.example@xmpp.gw.test", want: Address{User: "alice", Domain: "café.example"}},
		{in: "sip:alice%40xmpp.test@xmpp.gw.test", want: Address{User: "alice", Domain: "xmpp.test"}},
		// Non-ASCII sent raw is tolerated.
		{in: "sip:élodie@sip.test", want: Address{User: "élodie", Domain: "sip.test"}},

		// Errors.
		{in: "", err: ErrMalformed},
		{in: "bob@sip.test", err: ErrMalformed},
		{in: "tel:+49-30-123", err: ErrUnmappable},
		{in: "mailto:bob@sip.test", err: ErrMalformed},
		{in: "xmpp:bob@sip.test", err: ErrMalformed},
		{in: "sip:bob:secret@sip.test", err: ErrMalformed},
		{in: "sip:bob:@sip.test", err: ErrMalformed},
		{in: "sip:@sip.test", err: ErrMalformed},
		{in: "sip:", err: ErrMalformed},
		{in: "sip:bob@", err: ErrMalformed},
		{in: "sip:bob@sip.test:", err: ErrMalformed},
		{in: "sip:bob@sip.test:99999", err: ErrMalformed},
		{in: "sip:bob@sip.test:50x", err: ErrMalformed},
		{in: "sip:a@b@sip.test", err: ErrMalformed},
		{in: "sip:bob smith@sip.test", err: ErrMalformed},
		{in: "sip:bob\\x@sip.test", err: ErrMalformed},
		{in: "sip:bob%@sip.test", err: ErrMalformed},
		{in: "sip:bob%4@sip.test", err: ErrMalformed},
		{in: "sip:bob%zz@sip.test", err: ErrMalformed},
		{in: "sip:%C3%28@sip.test", err: ErrMalformed},      // invalid UTF-8 once decoded
		{in: "sip:\xc3\x28@sip.test", err: ErrMalformed},    // invalid UTF-8 raw
		{in: "sip:bob%0D%0AX@sip.test", err: ErrMalformed},  // control characters
		{in: "sip:bob@sip.test;gr=a%00", err: ErrMalformed}, // control in resource
		{in: "sip:bob@sip.test;gr=%FF", err: ErrMalformed},  // bad UTF-8 in resource
		{in: "sip:bob@sip.test;gr=a;gr=b", err: ErrMalformed},
		{in: "sip:bob@sip.test;gr=a<b", err: ErrMalformed},
		{in: "sip:bob@sip.test;;lr", err: ErrMalformed},
		{in: "sip:bob@sip_test", err: ErrMalformed},
		{in: "sip:bob@sip..test", err: ErrMalformed},
		{in: "sip:bob@-sip.test", err: ErrMalformed},
		{in: "sip:bob@xn--zz.test", err: ErrMalformed},
		{in: "sip:bob@010.0.0.1", err: ErrMalformed},
		{in: "sip:bob@[::1", err: ErrMalformed},
		{in: "sip:bob@[fe80::1%25eth0]", err: ErrMalformed},
		{in: "sip:bob@sip%2Etest", err: ErrMalformed},
		{in: "<sip:bob@sip.test", err: ErrMalformed},
		{in: "<sip:bob@sip.test> x", err: ErrMalformed},
		{in: `"Bob <sip:bob@sip.test>`, err: ErrMalformed},
		{in: `"Bob" sip:bob@sip.test`, err: ErrMalformed},
		{in: `Bob" <sip:bob@sip.test>`, err: ErrMalformed},
		{in: "<sip:bob@sip.test>;tag=a\r\nVia: x", err: ErrMalformed},
		{in: "sip:bob@xmpp.gw.test", err: ErrMalformed},           // gateway user without domain
		{in: "sip:%40jabber.org@xmpp.gw.test", err: ErrMalformed}, // empty user
		{in: "sip:alice%40@xmpp.gw.test", err: ErrMalformed},      // empty domain
		{in: "sip:alice%40bad_domain@xmpp.gw.test", err: ErrMalformed},
		// Hairpins: an "XMPP user" in a domain the component serves.
		{in: "sip:bob%40sip.test@xmpp.gw.test", err: ErrUnmappable},
		{in: "sip:bob%40SIP.GW.test@xmpp.gw.test", err: ErrUnmappable},
		{in: "sip:" + strings.Repeat("a", maxURILen) + "@sip.test", err: ErrMalformed},
	}
	for _, tt := range tests {
		got, err := m.ParseSIPURI(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("ParseSIPURI(%q) = %+v, %v; want error %v", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSIPURI(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestURIRenderers(t *testing.T) {
	m := mustMapper(t, bothModes)
	transparent := mustMapper(t, Config{XMPPDomains: []string{"xmpp.test"}})
	tests := []struct {
		name string
		m    *Mapper
		f    func(*Mapper, Address) (string, error)
		in   Address
		want string
		err  error
	}{
		{"xmpp transparent", m, (*Mapper).URIOfXMPPUser, Address{User: "alice", Domain: "xmpp.test"}, "sip:alice@xmpp.test", nil},
		{"xmpp resource", m, (*Mapper).URIOfXMPPUser, Address{User: "alice", Domain: "xmpp.test", Resource: "a b/c:d;e"},
			"sip:alice@xmpp.test;gr=a%20b/c:d%3Be", nil},
		{"xmpp case kept", m, (*Mapper).URIOfXMPPUser, Address{User: "Alice", Domain: "XMPP.test"}, "sip:Alice@xmpp.test", nil},
		{"xmpp gateway", m, (*Mapper).URIOfXMPPUser, Address{User: "alice", Domain: "jabber.org"}, "sip:alice%40jabber.org@xmpp.gw.test", nil},
		{"xmpp gateway IDN", m, (*Mapper).URIOfXMPPUser, Address{User: "élodie", Domain: "café.example", Resource: "é"},
			"sip:%C3%A9lodie%40xn--caf-dma.example@xmpp.gw.test;gr=%C3%A9", nil},
		{"xmpp gateway escapes", m, (*Mapper).URIOfXMPPUser, Address{User: `a b"<>\@`, Domain: "jabber.org"},
			"sip:a%20b%22%3C%3E%5C%40%40jabber.org@xmpp.gw.test", nil},
		{"xmpp gateway itself", m, (*Mapper).URIOfXMPPUser, Address{Domain: "xmpp.gw.test"}, "sip:xmpp.gw.test", nil},
		{"xmpp gateway user in gateway", m, (*Mapper).URIOfXMPPUser, Address{User: "x", Domain: "xmpp.gw.test"}, "sip:x%40xmpp.gw.test@xmpp.gw.test", nil},
		{"xmpp domain only via gateway", m, (*Mapper).URIOfXMPPUser, Address{Domain: "jabber.org"}, "", ErrUnmappable},
		{"xmpp no gateway", transparent, (*Mapper).URIOfXMPPUser, Address{User: "alice", Domain: "jabber.org"}, "", ErrUnmappable},
		{"xmpp bad domain", m, (*Mapper).URIOfXMPPUser, Address{User: "alice", Domain: "a b"}, "", ErrMalformed},
		{"xmpp bad UTF-8", m, (*Mapper).URIOfXMPPUser, Address{User: "\xff", Domain: "xmpp.test"}, "", ErrMalformed},
		{"xmpp control", m, (*Mapper).URIOfXMPPUser, Address{User: "a", Domain: "xmpp.test", Resource: "\n"}, "", ErrMalformed},
		{"sip own", m, (*Mapper).URIOfSIPUser, Address{User: "Bob", Domain: "Fabrikam.COM"}, "sip:Bob@fabrikam.com", nil},
		{"sip IPv6", m, (*Mapper).URIOfSIPUser, Address{User: "bob", Domain: "[2001:db8::1]"}, "sip:bob@[2001:db8::1]", nil},
		{"sip domain only", m, (*Mapper).URIOfSIPUser, Address{Domain: "fabrikam.com", Resource: "r"}, "sip:fabrikam.com;gr=r", nil},
		{"sip user in SIP gateway", m, (*Mapper).URIOfSIPUser, Address{User: "bob", Domain: "xmpp.gw.test"}, "", ErrUnmappable},
		{"sip user in XMPP domain", m, (*Mapper).URIOfSIPUser, Address{User: "alice", Domain: "xmpp.test"}, "", ErrUnmappable},
		{"sip XMPP domain itself", m, (*Mapper).URIOfSIPUser, Address{Domain: "xmpp.test"}, "sip:xmpp.test", nil},
		{"xmpp user in SIP domain", m, (*Mapper).URIOfXMPPUser, Address{User: "bob", Domain: "sip.test"}, "", ErrUnmappable},
		{"xmpp user in XMPP gateway", m, (*Mapper).URIOfXMPPUser, Address{User: "bob", Domain: "sip.gw.test"}, "", ErrUnmappable},
		{"sip empty domain", m, (*Mapper).URIOfSIPUser, Address{User: "bob"}, "", ErrMalformed},
	}
	for _, tt := range tests {
		got, err := tt.f(tt.m, tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: got %q, %v; want error %v", tt.name, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
