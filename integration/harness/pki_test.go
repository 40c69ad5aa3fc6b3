package harness

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTestCA(t *testing.T) {
	t.Parallel()
	ca, err := NewTestCA(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		hosts  []string
		ips    []string
		dnsSAN []string
	}{
		{"default", nil, []string{"127.0.0.1"}, nil},
		{"kamailio", []string{"127.0.0.1", "sip.test"}, []string{"127.0.0.1"}, []string{"sip.test"}},
		{"edge", []string{"127.0.0.1", "lync.test", "sip.lync.test"}, []string{"127.0.0.1"}, []string{"lync.test", "sip.lync.test"}},
	}
	for _, c := range cases {
		leaf, err := ca.Issue(c.name, c.hosts...)
		if err != nil {
			t.Fatal(err)
		}
		cert := readCert(t, leaf.CertFile)
		var ips []string
		for _, ip := range cert.IPAddresses {
			ips = append(ips, ip.String())
		}
		if !slices.Equal(ips, c.ips) || !slices.Equal(cert.DNSNames, c.dnsSAN) {
			t.Errorf("%s: SANs %v %v, want %v %v", c.name, ips, cert.DNSNames, c.ips, c.dnsSAN)
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s: does not verify for %v: %v", c.name, usage, err)
			}
		}
		if err := cert.VerifyHostname("127.0.0.1"); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if st, err := os.Stat(leaf.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file mode %v, %v", c.name, st.Mode(), err)
		}
		conf, err := leaf.TLSConfig()
		if err != nil || len(conf.Certificates) != 1 || conf.RootCAs == nil || conf.MinVersion != tls.VersionTLS12 {
			t.Errorf("%s: TLSConfig %+v, %v", c.name, conf, err)
		}
	}
	// Another CA's leaf does not verify against this one.
	other, err := NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.Issue("x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readCert(t, stranger.CertFile).Verify(x509.VerifyOptions{Roots: ca.Pool()}); err == nil {
		t.Error("a leaf of another CA verified")
	}
	if _, err := ca.Issue("../escape"); err == nil {
		t.Error("a leaf name with a path was accepted")
	}
	if _, err := ca.Issue("ca"); err == nil {
		t.Error("a leaf named ca (overwriting the CA) was accepted")
	}
	if _, err := LoadTLSConfig(stranger.CertFile, stranger.KeyFile, "/nonexistent/ca.crt"); err == nil {
		t.Error("a missing CA file was accepted")
	}
	if _, err := LoadTLSConfig(stranger.CertFile, ca.KeyFile, ""); err == nil {
		t.Error("a certificate with the wrong key was accepted")
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
