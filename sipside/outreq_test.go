package sipside

import (
	"net/netip"
	"strings"
	"testing"
)

// The transport choice is made on the serialized size: nothing over 1300
// bytes goes over UDP, whatever the sent-by the transport fills in.
func TestBuildMessageTransportBoundary(t *testing.T) {
	for _, proxy := range []string{"127.0.0.1:5060", "[::1]:5060"} {
		ap := netip.MustParseAddrPort(proxy)
		sawUDP, sawTCP := false, false
		for n := 800; n < 1200; n++ {
			out, err := buildMessage(xmppMessage("id", strings.Repeat("a", n)), "sip:alice@xmpp.test;gr=phone", "sip:bob@sip.test", "ev", ap)
			if err != nil {
				t.Fatal(err)
			}
			// The longest sent-by the transport could write.
			via := out.req.Via()
			via.Host, via.Port = "255.255.255.255", 65535
			if ap.Addr().Is6() {
				via.Host = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
			}
			size := len(out.req.String())
			switch out.transport {
			case "UDP":
				sawUDP = true
				if size > udpLimit {
					t.Fatalf("%s: %d bytes chosen for UDP", proxy, size)
				}
				if out.req.Transport() != "UDP" || via.Transport != "UDP" {
					t.Fatalf("transport %s via %s", out.req.Transport(), via.Transport)
				}
			case "TCP":
				sawTCP = true
				if out.req.Transport() != "TCP" || via.Transport != "TCP" {
					t.Fatalf("transport %s via %s", out.req.Transport(), via.Transport)
				}
				if size <= udpLimit-len("255.255.255.255:65535") {
					t.Errorf("%s: %d bytes sent over TCP though well under the limit", proxy, size)
				}
			}
		}
		if !sawUDP || !sawTCP {
			t.Errorf("%s: range did not cross the limit", proxy)
		}
	}
}

func TestOutboundCallIDStable(t *testing.T) {
	a, b := outboundCallID("ev-1"), outboundCallID("ev-1")
	if a != b || a == outboundCallID("ev-2") || !strings.HasSuffix(a, "@parley") {
		t.Errorf("%q %q", a, b)
	}
}

// A redelivered event must be a retransmission of the same transaction:
// same Call-ID, From tag and Via branch; another event must differ in each.
func TestRedeliveryIsSameTransaction(t *testing.T) {
	ap := netip.MustParseAddrPort("127.0.0.1:5060")
	build := func(ev string) (cid, tag, branch string) {
		out, err := buildMessage(xmppMessage("id", "hi"), "sip:alice@xmpp.test", "sip:bob@sip.test", ev, ap)
		if err != nil {
			t.Fatal(err)
		}
		tag, _ = out.req.From().Params.Get("tag")
		branch, _ = out.req.Via().Params.Get("branch")
		return out.req.CallID().Value(), tag, branch
	}
	c1, t1, b1 := build("ev-1")
	c2, t2, b2 := build("ev-1")
	c3, t3, b3 := build("ev-2")
	if c1 != c2 || t1 != t2 || b1 != b2 {
		t.Fatalf("redelivery differs: %s/%s/%s vs %s/%s/%s", c1, t1, b1, c2, t2, b2)
	}
	if c1 == c3 || t1 == t3 || b1 == b3 {
		t.Fatal("two events share a transaction identity")
	}
	if !strings.HasPrefix(b1, "z9hG4bK") {
		t.Fatalf("branch %q lacks the RFC 3261 magic cookie", b1)
	}
}
