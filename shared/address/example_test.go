package address_test

import (
	"fmt"

	"github.com/parleygw/parley/shared/address"
)

func Example() {
	m, err := address.NewMapper(address.Config{
		SIPDomains:  []string{"contoso.com"},
		XMPPGateway: "sip.gw.example",
		XMPPDomains: []string{"xmpp.example"},
		SIPGateway:  "xmpp.gw.example",
	})
	if err != nil {
		panic(err)
	}

	// A Lync user, transparent and through the gateway.
	for _, uri := range []string{`"Bob" <sip:Bob@contoso.com;gr=urn:uuid:1>;tag=9`, "sip:o'neil@fabrikam.com"} {
		a, _ := m.ParseSIPURI(uri)
		j, _ := m.JIDOfSIPUser(a)
		fmt.Printf("%s → %v → %s\n", uri, a, j)
	}

	// An XMPP user, transparent and through the gateway.
	for _, j := range []string{"alice@xmpp.example/phone", "élodie@café.example"} {
		a, _ := m.ParseJID(j)
		uri, _ := m.URIOfXMPPUser(a)
		fmt.Printf("%s → %v → %s\n", j, a, uri)
	}
	// Output:
	// "Bob" <sip:Bob@contoso.com;gr=urn:uuid:1>;tag=9 → Bob@contoso.com/urn:uuid:1 → bob@contoso.com/urn:uuid:1
	// sip:o'neil@fabrikam.com → o'neil@fabrikam.com → o\27neil\40fabrikam.com@sip.gw.example
	// alice@xmpp.example/phone → alice@xmpp.example/phone → sip:alice@xmpp.example;gr=phone
	// élodie@café.example → élodie@café.example → sip:%C3%A9lodie%40xn--caf-dma.example@xmpp.gw.example
}
