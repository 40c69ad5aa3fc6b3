package address

import (
	"errors"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// fuzzMappers are the configurations every property is checked under:
// both modes at once, and transparent domains only.
func fuzzMappers(tb testing.TB) []*Mapper {
	return []*Mapper{
		mustMapper(tb, bothModes),
		mustMapper(tb, Config{SIPDomains: []string{"sip.test", "example.com"}, XMPPDomains: []string{"xmpp.test"}}),
	}
}

// seedJIDs and seedURIs come from the standards.md §3 table and the unit
// tests.
var seedJIDs = []string{
	"bob@sip.test", "Bob@SIP.Test/Desk", "sip.test", "alice@xmpp.test/phone", "alice@jabber.org",
	`bob\40fabrikam.com@sip.gw.test`, `a\40b\40example.com@sip.gw.test/r`, `c\3a\5c5commas@example.com`,
	`c\5c27t@example.com`, `o\27neil@example.com`, `john\20doe@example.com`, "élodie@example.com",
	`bob\40café.example@sip.gw.test`, `bob\40[2001\3adb8\3a\3a1]@sip.gw.test`, "sip.gw.test/x",
	`\20bob@sip.test`, `c\5cnet@example.com`, `\2plus\2is\4@example.com`, "x@xmpp.gw.test",
	`alice\40xmpp.test@sip.gw.test`,
}

var seedURIs = []string{
	"sip:alice@lync.example.com", "sip:+4930123@pbx.example.de;user=phone", "tel:+49-30-123",
	"sip:a%40b@example.com", "sip:o'neil@example.com", "sip:john%20doe@example.com",
	"sip:c%5C27t@example.com", "sip:%C3%A9lodie@example.com", "sip:juliet@example.com;gr=balcony",
	"sip:Alice@example.com", "sip:%20bob@example.com", `"Bob" <sip:bob@sip.test;gr=x>;tag=1`,
	"sip:alice%40jabber.org@xmpp.gw.test", "sip:bob@[2001:db8::1]:5060", "sip:bob:pw@sip.test",
	"sip:a;b?c/d@sip.test;GR=%C3%A9?h=v", "sip:bob@xn--caf-dma.example", "sip:bob%40sip.test@xmpp.gw.test",
}

// FuzzJIDRoundTrip: a JID that ParseJID accepts maps back to its canonical
// self, directly and through the SIP URI of the same Address.
func FuzzJIDRoundTrip(f *testing.F) {
	for _, s := range seedJIDs {
		f.Add(s)
	}
	mappers := fuzzMappers(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, m := range mappers {
			checkJIDRoundTrip(t, m, s)
		}
	})
}

func checkJIDRoundTrip(t *testing.T, m *Mapper, s string) {
	a, err := m.ParseJID(s)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnmappable) {
			t.Fatalf("ParseJID(%q): untyped error %v", s, err)
		}
		return
	}
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatalf("ParseJID accepted %q that mellium refuses: %v", s, err)
	}
	canon := j.String()
	if b, err := m.ParseJID(canon); err != nil || b != a {
		t.Fatalf("ParseJID(%q) = %+v, %v; ParseJID(%q) = %+v", canon, b, err, s, a)
	}
	renderJID, renderURI := m.JIDOfXMPPUser, m.URIOfXMPPUser
	if m.ServesSIPDomain(j.Domainpart()) {
		renderJID, renderURI = m.JIDOfSIPUser, m.URIOfSIPUser
	}
	if got, err := renderJID(a); err != nil || got != canon {
		t.Fatalf("JID %q → %+v → %q, %v", canon, a, got, err)
	}
	uri, err := renderURI(a)
	if err != nil {
		if !errors.Is(err, ErrUnmappable) {
			t.Fatalf("JID %q → %+v → URI error %v", canon, a, err)
		}
		return
	}
	b, err := m.ParseSIPURI(uri)
	if err != nil || b != a {
		t.Fatalf("JID %q → %+v → %q → %+v, %v", canon, a, uri, b, err)
	}
	if got, err := renderJID(b); err != nil || got != canon {
		t.Fatalf("JID %q → %q → %+v → %q, %v", canon, uri, b, got, err)
	}
}

// FuzzSIPURIRoundTrip: the URI rendered for any Address parses back to the
// same Address, modulo NormalizeDomain; the JID rendered for that Address
// parses back to it with the user folded by PRECIS.
func FuzzSIPURIRoundTrip(f *testing.F) {
	mappers := fuzzMappers(f)
	for _, s := range append(seedURIs, seedJIDs...) {
		if a, err := mappers[0].ParseSIPURI(s); err == nil {
			f.Add(a.User, a.Domain, a.Resource, false)
			f.Add(a.User, a.Domain, a.Resource, true)
		}
		if a, err := mappers[0].ParseJID(s); err == nil {
			f.Add(a.User, a.Domain, a.Resource, true)
		}
	}
	f.Add(" bob", "example.com", "", false)
	f.Add("a＼２０b", "CAFÉ.example.", "a\u00a0b", false)
	f.Fuzz(func(t *testing.T, user, domain, resource string, xmppSide bool) {
		for _, m := range mappers {
			checkURIRoundTrip(t, m, Address{User: user, Domain: domain, Resource: resource}, xmppSide)
		}
	})
}

func checkURIRoundTrip(t *testing.T, m *Mapper, a Address, xmppSide bool) {
	renderURI, renderJID := m.URIOfSIPUser, m.JIDOfSIPUser
	if xmppSide {
		renderURI, renderJID = m.URIOfXMPPUser, m.JIDOfXMPPUser
	}
	uri, err := renderURI(a)
	if err != nil {
		if !errors.Is(err, ErrUnmappable) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("URI of %+v: untyped error %v", a, err)
		}
		return
	}
	want := a
	if want.Domain, err = NormalizeDomain(a.Domain); err != nil {
		t.Fatalf("URI of %+v rendered as %q despite bad domain: %v", a, uri, err)
	}
	b, err := m.ParseSIPURI(uri)
	if err != nil || b != want {
		t.Fatalf("%+v → %q → %+v, %v; want %+v", a, uri, b, err, want)
	}
	if again, err := renderURI(b); err != nil || again != uri {
		t.Fatalf("%+v → %q → %+v → %q, %v", a, uri, b, again, err)
	}
	j, err := renderJID(b)
	if err != nil {
		if !errors.Is(err, ErrUnmappable) {
			t.Fatalf("JID of %+v: %v", b, err)
		}
		return
	}
	c, err := m.ParseJID(j)
	if err != nil {
		t.Fatalf("%+v → JID %q refused by ParseJID: %v", b, j, err)
	}
	folded := want
	if b.User != "" {
		if folded.User, err = userFold.String(b.User); err != nil {
			t.Fatalf("%+v → %q although the user does not fold: %v", b, j, err)
		}
	}
	if c != folded {
		t.Fatalf("%+v → %q → %+v; want %+v", b, j, c, folded)
	}
}

// FuzzParse: arbitrary input never panics, errors are typed, and whatever
// parses renders back to something that parses to the same Address. The
// pure helpers are checked on the same input.
func FuzzParse(f *testing.F) {
	for _, s := range append(seedURIs, seedJIDs...) {
		f.Add(s)
	}
	for _, s := range []string{"%", `\5c`, "CAFÉ.example.", "[::1]", "1.2.3.4", "xn--", "a.-b"} {
		f.Add(s)
	}
	mappers := fuzzMappers(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, m := range mappers {
			checkParseJID(t, m, s)
			checkParseSIPURI(t, m, s)
		}
		checkHelpers(t, s)
	})
}

func checkParseJID(t *testing.T, m *Mapper, s string) {
	a, err := m.ParseJID(s)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnmappable) {
			t.Fatalf("ParseJID(%q): untyped error %v", s, err)
		}
		return
	}
	for _, render := range []func(Address) (string, error){m.JIDOfSIPUser, m.JIDOfXMPPUser} {
		if j, err := render(a); err == nil {
			if b, err := m.ParseJID(j); err != nil || b != a {
				t.Fatalf("ParseJID(%q) = %+v → %q → %+v, %v", s, a, j, b, err)
			}
		}
	}
}

func checkParseSIPURI(t *testing.T, m *Mapper, s string) {
	a, err := m.ParseSIPURI(s)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnmappable) {
			t.Fatalf("ParseSIPURI(%q): untyped error %v", s, err)
		}
		return
	}
	for _, render := range []func(Address) (string, error){m.URIOfSIPUser, m.URIOfXMPPUser} {
		if u, err := render(a); err == nil {
			if b, err := m.ParseSIPURI(u); err != nil || b != a {
				t.Fatalf("ParseSIPURI(%q) = %+v → %q → %+v, %v", s, a, u, b, err)
			}
		}
	}
}

func checkHelpers(t *testing.T, s string) {
	if got := UnescapeLocal(EscapeLocal(s)); got != s {
		t.Fatalf("UnescapeLocal(EscapeLocal(%q)) = %q", s, got)
	}
	if utf8.ValidString(s) {
		for _, enc := range []string{PercentEncodeUser(s), percentEncodeParam(s)} {
			if got, err := PercentDecode(enc); err != nil || got != s {
				t.Fatalf("PercentDecode(%q) = %q, %v; want %q", enc, got, err, s)
			}
		}
	}
	d, err := NormalizeDomain(s)
	if err != nil {
		return
	}
	if again, err := NormalizeDomain(d); err != nil || again != d {
		t.Fatalf("NormalizeDomain(%q) = %q, then %q, %v", s, d, again, err)
	}
	ascii, err := asciiDomain(d)
	if err != nil {
		t.Fatalf("asciiDomain(%q): %v", d, err)
	}
	if back, err := NormalizeDomain(ascii); err != nil || back != d {
		t.Fatalf("NormalizeDomain(asciiDomain(%q) = %q) = %q, %v", d, ascii, back, err)
	}
	if j, err := jid.New("", d, ""); err != nil || j.Domainpart() != d {
		t.Fatalf("mellium disagrees on domain %q: %q, %v", d, j.Domainpart(), err)
	}
}
