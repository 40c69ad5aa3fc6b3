package address

import "testing"

func BenchmarkParseJID(b *testing.B) {
	m := mustMapper(b, bothModes)
	for _, in := range []string{"alice@xmpp.test/phone", `bob\40fabrikam.com@sip.gw.test/pc`} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.ParseJID(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkURIOfXMPPUser(b *testing.B) {
	m := mustMapper(b, bothModes)
	for _, a := range []Address{
		{User: "alice", Domain: "xmpp.test", Resource: "phone"},
		{User: "élodie", Domain: "café.example", Resource: "pc"},
	} {
		b.Run(a.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.URIOfXMPPUser(a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
