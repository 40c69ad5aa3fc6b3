package harness_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/xmppclient"
)

// rawComponent is a bare XEP-0114 connection, enough to prove that Prosody
// accepts several components on one port and routes to each.
type rawComponent struct {
	conn net.Conn
	buf  strings.Builder
}

func dialComponent(t *testing.T, addr, domain, secret string) *rawComponent {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawComponent{conn: conn}
	fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>", domain)
	m := c.waitFor(t, regexp.MustCompile(`<stream:stream[^>]*\sid=['"]([^'"]+)['"]`))
	sum := sha1.Sum([]byte(m[1] + secret))
	fmt.Fprintf(conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	c.waitFor(t, regexp.MustCompile(`<handshake\s*/>|<handshake></handshake>`))
	return c
}

func (c *rawComponent) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	b := make([]byte, 4096)
	for {
		if m := re.FindStringSubmatch(c.buf.String()); m != nil {
			return m
		}
		c.conn.SetReadDeadline(deadline)
		n, err := c.conn.Read(b)
		if err != nil {
			t.Fatalf("component: waiting for %s: %v; got %q", re, err, c.buf.String())
		}
		c.buf.Write(b[:n])
	}
}

func TestProsodyComponentsShareOnePort(t *testing.T) {
	t.Parallel()
	p := harness.StartProsody(t, harness.ProsodyOptions{
		Users:      map[string]string{"alice": "alice"},
		Components: map[string]string{"sip.xmpp.test": "s1", "lync.xmpp.test": "s2"},
	})
	sipc := dialComponent(t, p.ComponentAddr, "sip.xmpp.test", "s1")
	lyncc := dialComponent(t, p.ComponentAddr, "lync.xmpp.test", "s2")
	alice := xmppclient.Start(t, xmppclient.Options{JID: "alice@xmpp.test/test", Password: "alice", Addr: p.C2SAddr})
	if err := alice.Send("bob@lync.xmpp.test", "c1", "to lync 🚀"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Send("carol@sip.xmpp.test", "c2", "to sip"); err != nil {
		t.Fatal(err)
	}
	lyncc.waitFor(t, regexp.MustCompile(`<message[^>]*to=['"]bob@lync\.xmpp\.test['"][^>]*>.*to lync 🚀`))
	sipc.waitFor(t, regexp.MustCompile(`<message[^>]*to=['"]carol@sip\.xmpp\.test['"][^>]*>.*to sip`))
	if strings.Contains(sipc.buf.String(), "to lync") || strings.Contains(lyncc.buf.String(), "to sip") {
		t.Fatal("a message reached the wrong component")
	}

	// A component answers; alice receives it (UTF-8 from the server side).
	fmt.Fprintf(lyncc.conn, "<message from='bob@lync.xmpp.test' to='alice@xmpp.test/test' type='chat' id='r1'><body>réponse ✓</body></message>")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := alice.Wait(ctx, func(m xmppclient.Message) bool { return m.ID == "r1" })
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != "réponse ✓" || m.From != "bob@lync.xmpp.test" {
		t.Fatalf("alice got %+v", m)
	}

	// A wrong secret is refused.
	conn, err := net.DialTimeout("tcp", p.ComponentAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bad := &rawComponent{conn: conn}
	fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='sip.xmpp.test'>")
	bad.waitFor(t, regexp.MustCompile(`\sid=`))
	fmt.Fprintf(conn, "<handshake>0000</handshake>")
	bad.waitFor(t, regexp.MustCompile(`not-authorized`))
}
