package harness_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/sipua"
)

// tlsSender sends requests to Kamailio over TLS with sipgo, from a client
// certificate the test CA issued (or none).
type tlsSender struct {
	ua     *sipgo.UserAgent
	client *sipgo.Client
	dest   string
}

func newTLSSender(t *testing.T, conf *tls.Config, dest string) *tlsSender {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("tls-test"), sipgo.WithUserAgenTLSConfig(conf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	return &tlsSender{ua: ua, client: c, dest: dest}
}

// message sends a MESSAGE from sip:tls@sip.test to to, with extra headers.
func (s *tlsSender) message(ctx context.Context, to, body string, hdrs ...sip.Header) (*sip.Response, error) {
	var target sip.Uri
	if err := sip.ParseUri(to, &target); err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.MESSAGE, target)
	req.SetTransport("TLS")
	req.SetDestination(s.dest)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "tls", Host: "sip.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target.User, Host: target.Host}})
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	ct := sip.ContentTypeHeader("text/plain")
	req.AppendHeader(&ct)
	req.SetBody([]byte(body))
	return s.client.Do(ctx, req)
}

func tlsKamailio(t *testing.T, ca *harness.TestCA) *harness.Kamailio {
	t.Helper()
	leaf := ca.MustIssue(t, "kamailio", "127.0.0.1", "sip.test")
	return harness.StartKamailio(t, harness.KamailioOptions{
		TLSPort: harness.FreePort(t), TLSCert: leaf.CertFile, TLSKey: leaf.KeyFile, TLSCA: ca.CertFile,
	})
}

func TestKamailioTLS(t *testing.T) {
	t.Parallel()
	ca := harness.StartTestCA(t)
	k := tlsKamailio(t, ca)
	if k.TLSAddr == "" || k.TLSAddr == k.Addr {
		t.Fatalf("TLSAddr %q (Addr %q)", k.TLSAddr, k.Addr)
	}
	dave := registered(t, k, "dave", "sip.test", "udp")
	conf, err := ca.MustIssue(t, "client", "127.0.0.1", "lync.test").TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	s := newTLSSender(t, conf, k.TLSAddr)
	// Lync A/V INVITEs exceed 8 KB; chat messages may be 20 KB.
	for _, size := range []int{10, 20000} {
		body := strings.Repeat("ü", size/2)
		res, err := s.message(ctx, dave.AOR(), body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Fatalf("MESSAGE over TLS (%d bytes): %d %s", len(body), res.StatusCode, res.Reason)
		}
		m, err := dave.Wait(ctx, func(m sipua.Message) bool { return m.Body == body })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.WaitRequest(ctx, func(r harness.KamailioRequest) bool {
			return r.CallID == m.CallID && r.Proto == "tls" && r.Len > size
		}); err != nil {
			t.Errorf("%d bytes: no REQ line with proto tls: %v %+v", size, err, k.Requests())
		}
	}
}

// Mutual TLS: Kamailio refuses a client without a certificate from the
// test CA, and a client that trusts another CA refuses Kamailio.
func TestKamailioTLSVerifiesPeers(t *testing.T) {
	t.Parallel()
	ca := harness.StartTestCA(t)
	k := tlsKamailio(t, ca)
	other := harness.StartTestCA(t)
	good, err := ca.MustIssue(t, "good").TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.MustIssue(t, "stranger").TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	noCert := good.Clone()
	noCert.Certificates = nil
	foreignCert := good.Clone()
	foreignCert.Certificates = stranger.Certificates
	distrusting := stranger.Clone() // trusts only the other CA

	cases := []struct {
		name string
		conf *tls.Config
		ok   bool
	}{
		{"certificate from the test CA", good, true},
		{"no client certificate", noCert, false},
		{"client certificate from another CA", foreignCert, false},
		{"client does not trust Kamailio's CA", distrusting, false},
	}
	for _, c := range cases {
		err := tlsExchange(k.TLSAddr, c.conf)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && err == nil {
			t.Errorf("%s: the TLS connection worked, want it refused", c.name)
		}
	}
}

// tlsExchange connects with TLS 1.2 (so that a refused client certificate
// fails the handshake itself), sends an OPTIONS and reads the answer.
func tlsExchange(addr string, conf *tls.Config) error {
	conf = conf.Clone()
	conf.MaxVersion = tls.VersionTLS12
	d := &net.Dialer{Timeout: testTimeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	host, port, _ := net.SplitHostPort(c.LocalAddr().String())
	p, _ := strconv.Atoi(port)
	msg := fmt.Sprintf("OPTIONS sip:sip.test SIP/2.0\r\nVia: SIP/2.0/TLS %s:%d;branch=z9hG4bK%s\r\n"+
		"From: <sip:probe@sip.test>;tag=1\r\nTo: <sip:sip.test>\r\nCall-ID: probe-%s\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", host, p, sip.GenerateTagN(8), sip.GenerateTagN(8))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
		return errors.New("not a SIP answer: " + string(buf[:n]))
	}
	return nil
}
