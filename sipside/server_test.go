package sipside

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/store/memstore"
)

func validConfig() config.SIP {
	return config.SIP{
		ListenUDP:       "127.0.0.1:0",
		OutboundProxy:   "127.0.0.1:5060",
		TrustedProxies:  []string{"127.0.0.1", "10.0.0.0/8", "::1", "::ffff:192.0.2.0/120"},
		DeliveryWait:    config.Duration{Duration: time.Second},
		MaxMessageBytes: 1024,
	}
}

func TestNewValidates(t *testing.T) {
	bus := memstore.New(memstore.Options{})
	defer bus.Close()
	mapper, err := address.NewMapper(address.Config{XMPPDomains: []string{"xmpp.test"}})
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Bus: bus, Store: bus, Mapper: mapper, Instance: "i"}
	if _, err := New(validConfig(), deps); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*config.SIP)
		want string
	}{
		{"proxy host name", func(c *config.SIP) { c.OutboundProxy = "kamailio.test:5060" }, "outbound_proxy"},
		{"proxy without port", func(c *config.SIP) { c.OutboundProxy = "127.0.0.1" }, "outbound_proxy"},
		{"no proxy", func(c *config.SIP) { c.OutboundProxy = "" }, "outbound_proxy"},
		{"trusted name", func(c *config.SIP) { c.TrustedProxies = []string{"proxy.test"} }, "trusted_proxies"},
		{"trusted bad CIDR", func(c *config.SIP) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "trusted_proxies"},
		{"no trusted", func(c *config.SIP) { c.TrustedProxies = nil }, "trusted_proxies"},
		{"listen host name", func(c *config.SIP) { c.ListenUDP = "localhost:5080" }, "listen_udp"},
		{"no listener", func(c *config.SIP) { c.ListenUDP = "" }, "listen_udp"},
		{"tls without cert", func(c *config.SIP) { c.ListenTLS = "127.0.0.1:0" }, "listen_tls"},
		{"tls missing files", func(c *config.SIP) {
			c.ListenTLS, c.TLSCert, c.TLSKey = "127.0.0.1:0", "/nonexistent/cert.pem", "/nonexistent/key.pem"
		}, "tls_cert"},
		{"delivery wait too long", func(c *config.SIP) { c.DeliveryWait = config.Duration{Duration: time.Minute} }, "delivery_wait"},
		{"no size limit", func(c *config.SIP) { c.MaxMessageBytes = 0 }, "max_message_bytes"},
		{"domain the mapper does not serve", func(c *config.SIP) { c.Domains = []string{"xmpp.test", "other.test"} }, "sip.domains"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mod(&c)
			_, err := New(c, deps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
	for _, d := range []Deps{{Store: bus, Mapper: mapper, Instance: "i"}, {Bus: bus, Mapper: mapper, Instance: "i"},
		{Bus: bus, Store: bus, Instance: "i"}, {Bus: bus, Store: bus, Mapper: mapper}} {
		if _, err := New(validConfig(), d); err == nil {
			t.Errorf("deps %+v accepted", d)
		}
	}
	// Metrics register once per registry.
	reg := prometheus.NewRegistry()
	d := deps
	d.Metrics = reg
	if _, err := New(validConfig(), d); err != nil {
		t.Fatal(err)
	}
	if _, err := New(validConfig(), d); err == nil {
		t.Error("second Server on one registry accepted")
	}
}

func TestTrustedPrefixes(t *testing.T) {
	st, err := parseSettings(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{st: st}
	for addr, want := range map[string]bool{
		"127.0.0.1:5060":          true,
		"127.0.0.2:5060":          false,
		"10.1.2.3:5060":           true,
		"11.0.0.1:5060":           false,
		"[::1]:5060":              true,
		"[::ffff:127.0.0.1]:5060": true, // v4-mapped source
		"192.0.2.77:5060":         true, // from the v4-mapped prefix
		"192.0.3.1:5060":          false,
		"garbage":                 false,
	} {
		req := newRequestFrom(addr)
		if _, got := s.trustedSource(req); got != want {
			t.Errorf("%s: trusted=%v, want %v", addr, got, want)
		}
	}
}

// Draining: new requests get 503, the MESSAGE and the delivery in flight
// finish, then Run returns nil.
func TestDrain(t *testing.T) {
	e := startEnv(t, withConfig(func(c *config.SIP) { c.DeliveryWait = config.Duration{Duration: time.Second} }))
	inflight := e.sendAsync("udp", "sip:alice@xmpp.test", "text/plain", "in flight while draining")
	e.mustEvent()

	e.peer.SetAnswerDelay(600 * time.Millisecond)
	e.publishToSIP("ev-drain", xmppMessage("x-drain", "delivered while draining"))
	peerGot(t, e.peer, outboundCallID("ev-drain"))

	e.stop()
	for deadline := time.Now().Add(2 * time.Second); e.srv.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still ready after its context ended")
		}
	}
	raw := newRawUDP(t, "127.0.0.1")
	raw.send(e.parleyAddr("udp"), raw.request("OPTIONS", "drain1", "drain-call", "t1", "", nil))
	if res := raw.mustRecv(); res.StatusCode != 503 || header(res, "Retry-After") == "" {
		t.Errorf("while draining: %d Retry-After %q", res.StatusCode, header(res, "Retry-After"))
	}

	if r := wait(t, inflight); r.res.StatusCode != 202 {
		t.Errorf("in-flight MESSAGE answered %d", r.res.StatusCode)
	}
	select {
	case err := <-e.runDone:
		e.runDone <- err // for the cleanup
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := counter(t, e.srv.metrics.messagesOut.WithLabelValues("udp", "2xx")); n != 1 {
		t.Errorf("delivery in flight not finished before Run returned (2xx counted %v)", n)
	}
}

func TestRunTwiceAndPortInUse(t *testing.T) {
	e := startEnv(t)
	if err := e.srv.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
	bus := memstore.New(memstore.Options{})
	defer bus.Close()
	c := e.cfg
	c.ListenUDP = e.parleyAddr("udp")
	s, err := New(c, Deps{Bus: bus, Store: bus, Mapper: e.mapper, Instance: "other"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "listen udp") {
		t.Errorf("Run on a port in use: %v", err)
	}
}

// TLS listener: a request over TLS is served like any other.
func TestTLSListener(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	e := startEnv(t, withConfig(func(c *config.SIP) {
		c.ListenTLS, c.TLSCert, c.TLSKey = "127.0.0.1:0", certFile, keyFile
	}))
	conn, err := tls.Dial("tcp", e.srv.Addr("tls").String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	la := conn.LocalAddr().String()
	req := "OPTIONS sip:alice@xmpp.test SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS " + la + ";branch=z9hG4bKtls1\r\nMax-Forwards: 70\r\n" +
		"From: <sip:bob@sip.test>;tag=t1\r\nTo: <sip:alice@xmpp.test>\r\nCall-ID: tls-call\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 OK\r\n") {
		t.Errorf("got %q", buf[:n])
	}
}

// selfSigned writes a throwaway certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "parley test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestRateLimiter(t *testing.T) {
	r := newRateLimiter(time.Minute, 2)
	now := time.Now()
	if ok, _ := r.allow("a", now); !ok {
		t.Fatal("first line held")
	}
	for i := 0; i < 5; i++ {
		if ok, _ := r.allow("a", now.Add(time.Second)); ok {
			t.Fatal("flood let through")
		}
	}
	if ok, held := r.allow("a", now.Add(2*time.Minute)); !ok || held != 5 {
		t.Errorf("after the interval: %v, held %d", ok, held)
	}
	r.allow("b", now)
	r.allow("c", now) // full: forgets, stays bounded
	if len(r.last) > 2 {
		t.Errorf("remembers %d keys", len(r.last))
	}
}
