package address

import (
	"errors"
	"strings"
	"testing"
)

func TestParseJID(t *testing.T) {
	m := mustMapper(t, bothModes)
	tests := []struct {
		in   string
		want Address
		err  error
	}{
		{in: "bob@sip.test", want: Address{User: "bob", Domain: "sip.test"}},
		{in: "Bob@SIP.Test/Desk", want: Address{User: "bob", Domain: "sip.test", Resource: "Desk"}},
		{in: "sip.test", want: Address{Domain: "sip.test"}},
		{in: "alice@xmpp.test/phone", want: Address{User: "alice", Domain: "xmpp.test", Resource: "phone"}},
		{in: "alice@jabber.org", want: Address{User: "alice", Domain: "jabber.org"}},
		{in: `d\27artagnan@jabber.org`, want: Address{User: "d'artagnan", Domain: "jabber.org"}},
		// XEP-0106 §5.1 examples that follow business rule 7.
		{in: `space\20cadet@example.com`, want: Address{User: "space cadet", Domain: "example.com"}},
		{in: `call\20me\20\22ishmael\22@example.com`, want: Address{User: `call me "ishmael"`, Domain: "example.com"}},
		{in: `\2f.fanboy@example.com`, want: Address{User: "/.fanboy", Domain: "example.com"}},
		{in: `\3a\3afoo\3a\3a@example.com`, want: Address{User: "::foo::", Domain: "example.com"}},
		{in: `c\3a\5c5commas@example.com`, want: Address{User: `c:\5commas`, Domain: "example.com"}},
		{in: `c\3a\net@example.com`, want: Address{User: `c:\net`, Domain: "example.com"}},
		// Unknown and partial sequences are not sequences.
		{in: `\2plus\2is\4@example.com`, want: Address{User: `\2plus\2is\4`, Domain: "example.com"}},
		{in: `foob\41r@example.com`, want: Address{User: `foob\41r`, Domain: "example.com"}},
		// IDN domain, either label form in, U-label out.
		{in: "bob@xn--caf-dma.example", want: Address{User: "bob", Domain: "café.example"}},
		{in: "élodie@CAFÉ.example", want: Address{User: "élodie", Domain: "café.example"}},
		// The gateway.
		{in: `bob\40fabrikam.com@sip.gw.test`, want: Address{User: "bob", Domain: "fabrikam.com"}},
		{in: `Bob\40Fabrikam.com@sip.gw.test/pc`, want: Address{User: "bob", Domain: "fabrikam.com", Resource: "pc"}},
		{in: `a\40b\40example.com@sip.gw.test`, want: Address{User: "a@b", Domain: "example.com"}},
		{in: `bob\40café.example@sip.gw.test`, want: Address{User: "bob", Domain: "café.example"}},
		{in: `bob\40[2001\3adb8\3a\3a1]@sip.gw.test`, want: Address{User: "bob", Domain: "[2001:db8::1]"}},
		{in: `bob\40sip.gw.test@sip.gw.test`, want: Address{User: "bob", Domain: "sip.gw.test"}},
		{in: "sip.gw.test", want: Address{Domain: "sip.gw.test"}},
		{in: "sip.gw.test/x", want: Address{Domain: "sip.gw.test", Resource: "x"}},

		// Not JIDs.
		{in: "", err: ErrMalformed},
		{in: "@sip.test", err: ErrMalformed},
		{in: "bob@", err: ErrMalformed},
		{in: "bob@sip.test/", err: ErrMalformed},
		{in: "a b@sip.test", err: ErrMalformed},
		{in: "\xff@sip.test", err: ErrMalformed},
		{in: "bob@sip_test", err: ErrMalformed},
		{in: strings.Repeat("a", 1024) + "@sip.test", err: ErrMalformed},
		{in: strings.Repeat("a", maxJIDLen+1), err: ErrMalformed},
		// Not canonical: aliases of another JID.
		{in: `\20bob@sip.test`, err: ErrMalformed},
		{in: `bob\20@sip.test`, err: ErrMalformed},
		{in: `c\5cnet@example.com`, err: ErrMalformed}, // canonical is c\net
		{in: `bob\40xn--caf-dma.example@sip.gw.test`, err: ErrMalformed},
		{in: `bob\40fabrikam.com.@sip.gw.test`, err: ErrMalformed},
		{in: `bob\40sip.test@sip.gw.test`, err: ErrMalformed}, // bob@sip.test
		// Gateway localparts that name no SIP address.
		{in: "bob@sip.gw.test", err: ErrMalformed},
		{in: `\40fabrikam.com@sip.gw.test`, err: ErrMalformed},
		{in: `bob\40@sip.gw.test`, err: ErrMalformed},
		{in: `bob\40bad_domain@sip.gw.test`, err: ErrMalformed},
		// Hairpins: a "SIP user" in a domain sipside serves for XMPP users.
		{in: `alice\40xmpp.test@sip.gw.test`, err: ErrUnmappable},
		{in: `alice\40xmpp.gw.test@sip.gw.test`, err: ErrUnmappable},
	}
	for _, tt := range tests {
		got, err := m.ParseJID(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("ParseJID(%q) = %+v, %v; want error %v", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseJID(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestJIDRenderers(t *testing.T) {
	m := mustMapper(t, bothModes)
	transparent := mustMapper(t, Config{SIPDomains: []string{"sip.test"}})
	tests := []struct {
		name string
		m    *Mapper
		f    func(*Mapper, Address) (string, error)
		in   Address
		want string
		err  error
	}{
		{"sip transparent", m, (*Mapper).JIDOfSIPUser, Address{User: "Bob", Domain: "SIP.test", Resource: "Desk"}, "bob@sip.test/Desk", nil},
		{"sip domain", m, (*Mapper).JIDOfSIPUser, Address{Domain: "sip.test"}, "sip.test", nil},
		{"sip gateway", m, (*Mapper).JIDOfSIPUser, Address{User: "Bob", Domain: "Fabrikam.com"}, `bob\40fabrikam.com@sip.gw.test`, nil},
		{"sip gateway IDN", m, (*Mapper).JIDOfSIPUser, Address{User: "bob", Domain: "xn--caf-dma.example"}, `bob\40café.example@sip.gw.test`, nil},
		{"sip gateway itself", m, (*Mapper).JIDOfSIPUser, Address{Domain: "sip.gw.test"}, "sip.gw.test", nil},
		{"sip XEP-0106 #12", m, (*Mapper).JIDOfSIPUser, Address{User: `c:\5commas`, Domain: "sip.test"}, `c\3a\5c5commas@sip.test`, nil},
		{"sip XEP-0106 rule 7", m, (*Mapper).JIDOfSIPUser, Address{User: `c:\net`, Domain: "sip.test"}, `c\3a\net@sip.test`, nil},
		{"sip upper-case sequence", m, (*Mapper).JIDOfSIPUser, Address{User: `a\2Fb`, Domain: "sip.test"}, `a\5c2fb@sip.test`, nil},
		{"sip full-width backslash", m, (*Mapper).JIDOfSIPUser, Address{User: "a＼２０b", Domain: "sip.test"}, `a\5c20b@sip.test`, nil},
		{"sip leading space", m, (*Mapper).JIDOfSIPUser, Address{User: " bob", Domain: "sip.test"}, "", ErrUnmappable},
		{"sip trailing space", m, (*Mapper).JIDOfSIPUser, Address{User: "bob ", Domain: "sip.test"}, "", ErrUnmappable},
		{"sip PRECIS refuses", m, (*Mapper).JIDOfSIPUser, Address{User: "☃", Domain: "sip.test"}, "", ErrUnmappable},
		{"sip too long", m, (*Mapper).JIDOfSIPUser, Address{User: strings.Repeat("a", 1024), Domain: "sip.test"}, "", ErrUnmappable},
		{"sip resource not stable", m, (*Mapper).JIDOfSIPUser, Address{User: "bob", Domain: "sip.test", Resource: "a\u00a0b"}, "", ErrUnmappable},
		{"sip domain only via gateway", m, (*Mapper).JIDOfSIPUser, Address{Domain: "fabrikam.com"}, "", ErrUnmappable},
		{"sip no gateway", transparent, (*Mapper).JIDOfSIPUser, Address{User: "bob", Domain: "fabrikam.com"}, "", ErrUnmappable},
		{"sip bad domain", m, (*Mapper).JIDOfSIPUser, Address{User: "bob", Domain: "-x-"}, "", ErrMalformed},
		{"sip bad UTF-8", m, (*Mapper).JIDOfSIPUser, Address{User: "b\xffb", Domain: "sip.test"}, "", ErrMalformed},
		{"xmpp own", m, (*Mapper).JIDOfXMPPUser, Address{User: "O'Neil", Domain: "jabber.org", Resource: "r"}, `o\27neil@jabber.org/r`, nil},
		{"xmpp domain", m, (*Mapper).JIDOfXMPPUser, Address{Domain: "jabber.org"}, "jabber.org", nil},
		{"xmpp gateway domain itself", m, (*Mapper).JIDOfXMPPUser, Address{Domain: "sip.gw.test"}, "sip.gw.test", nil},
		{"xmpp user in XMPP gateway", m, (*Mapper).JIDOfXMPPUser, Address{User: "bob", Domain: "sip.gw.test"}, "", ErrUnmappable},
		{"xmpp user in SIP domain", m, (*Mapper).JIDOfXMPPUser, Address{User: "bob", Domain: "sip.test"}, "", ErrUnmappable},
		{"sip user in XMPP domain", m, (*Mapper).JIDOfSIPUser, Address{User: "alice", Domain: "xmpp.test"}, "", ErrUnmappable},
		{"sip user in SIP gateway", m, (*Mapper).JIDOfSIPUser, Address{User: "alice", Domain: "xmpp.gw.test"}, "", ErrUnmappable},
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
