package address

import (
	"errors"
	"testing"
)

// Mode A (transparent) and mode B (gateway) mappers for the table of
// standards.md §3.
var (
	modeA = Config{
		SIPDomains:  []string{"lync.example.com", "pbx.example.de", "example.com"},
		XMPPDomains: []string{"xmpp.example"},
	}
	modeB = Config{
		XMPPGateway: "sip.gw.example",
		XMPPDomains: []string{"xmpp.example"},
		SIPGateway:  "xmpp.gw.example",
	}
)

func mustMapper(tb testing.TB, c Config) *Mapper {
	tb.Helper()
	m, err := NewMapper(c)
	if err != nil {
		tb.Fatalf("NewMapper(%+v): %v", c, err)
	}
	return m
}

// standardsTable is standards.md §3, one row per line. canon is what
// URIOfSIPUser renders for the parsed URI when it differs from uri
// (;user=phone is dropped); back is the URI the JID maps back to (ADDR-01:
// the original user part, case aside). A nil err means success in both
// modes.
var standardsTable = []struct {
	uri      string
	canon    string
	jidA     string
	jidB     string
	back     string
	parseErr error // from ParseSIPURI
	jidErr   error // from JIDOfSIPUser
}{
	{uri: "sip:alice@lync.example.com", jidA: "alice@lync.example.com",
		jidB: `alice\40lync.example.com@sip.gw.example`, back: "sip:alice@lync.example.com"},
	{uri: "sip:+4930123@pbx.example.de;user=phone", canon: "sip:+4930123@pbx.example.de", jidA: "+4930123@pbx.example.de",
		jidB: `+4930123\40pbx.example.de@sip.gw.example`, back: "sip:+4930123@pbx.example.de"},
	// tel: is policy in the table and not mapped yet.
	{uri: "tel:+49-30-123", parseErr: ErrUnmappable},
	{uri: "sip:a%40b@example.com", jidA: `a\40b@example.com`,
		jidB: `a\40b\40example.com@sip.gw.example`, back: "sip:a%40b@example.com"},
	{uri: "sip:o'neil@example.com", jidA: `o\27neil@example.com`,
		jidB: `o\27neil\40example.com@sip.gw.example`, back: "sip:o'neil@example.com"},
	{uri: "sip:john%20doe@example.com", jidA: `john\20doe@example.com`,
		jidB: `john\20doe\40example.com@sip.gw.example`, back: "sip:john%20doe@example.com"},
	{uri: "sip:c%5C27t@example.com", jidA: `c\5c27t@example.com`,
		jidB: `c\5c27t\40example.com@sip.gw.example`, back: "sip:c%5C27t@example.com"},
	{uri: "sip:%C3%A9lodie@example.com", jidA: "élodie@example.com",
		jidB: `élodie\40example.com@sip.gw.example`, back: "sip:%C3%A9lodie@example.com"},
	{uri: "sip:juliet@example.com;gr=balcony", jidA: "juliet@example.com/balcony",
		jidB: `juliet\40example.com@sip.gw.example/balcony`, back: "sip:juliet@example.com;gr=balcony"},
	{uri: "sip:Alice@example.com", jidA: "alice@example.com",
		jidB: `alice\40example.com@sip.gw.example`, back: "sip:alice@example.com"},
	{uri: "sip:%20bob@example.com", jidErr: ErrUnmappable},
}

func TestStandardsTable(t *testing.T) {
	modes := []struct {
		name string
		m    *Mapper
		jid  func(row int) string
	}{
		{"A", mustMapper(t, modeA), func(i int) string { return standardsTable[i].jidA }},
		{"B", mustMapper(t, modeB), func(i int) string { return standardsTable[i].jidB }},
	}
	for _, mode := range modes {
		for i, row := range standardsTable {
			t.Run(mode.name+"/"+row.uri, func(t *testing.T) {
				m := mode.m
				a, err := m.ParseSIPURI(row.uri)
				if row.parseErr != nil {
					if !errors.Is(err, row.parseErr) {
						t.Fatalf("ParseSIPURI error = %v, want %v", err, row.parseErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("ParseSIPURI: %v", err)
				}
				// SIP → Address → SIP reproduces the URI minus dropped params.
				canon := row.canon
				if canon == "" {
					canon = row.uri
				}
				if u, err := m.URIOfSIPUser(a); err != nil || u != canon {
					t.Errorf("URIOfSIPUser(%+v) = %q, %v; want %q", a, u, err, canon)
				}
				j, err := m.JIDOfSIPUser(a)
				if row.jidErr != nil {
					if !errors.Is(err, row.jidErr) {
						t.Fatalf("JIDOfSIPUser(%+v) error = %v, want %v", a, err, row.jidErr)
					}
					return
				}
				if err != nil || j != mode.jid(i) {
					t.Fatalf("JIDOfSIPUser(%+v) = %q, %v; want %q", a, j, err, mode.jid(i))
				}
				// JID → Address → SIP: ADDR-01.
				b, err := m.ParseJID(j)
				if err != nil {
					t.Fatalf("ParseJID(%q): %v", j, err)
				}
				if b.Domain != a.Domain || b.Resource != a.Resource {
					t.Errorf("ParseJID(%q) = %+v, want domain and resource of %+v", j, b, a)
				}
				if u, err := m.URIOfSIPUser(b); err != nil || u != row.back {
					t.Errorf("URIOfSIPUser(%+v) = %q, %v; want %q", b, u, err, row.back)
				}
			})
		}
	}
}
