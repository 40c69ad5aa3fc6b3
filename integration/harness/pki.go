package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestCA is a throwaway certificate authority for TLS on loopback: Kamailio's
// tls module and the Lync emulator trust it and present leaf certificates it
// issued (mutual TLS, as on a Lync federation link). Keys are ECDSA P-256.
// Nothing here is fit for anything but tests and `make demo`.
type TestCA struct {
	// Dir holds every file the CA wrote.
	Dir string
	// CertFile is the CA certificate (PEM): the trust anchor to give peers.
	CertFile string
	// KeyFile is the CA's private key (PEM, mode 0600).
	KeyFile string

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Leaf is a certificate issued by a TestCA, with its key, as PEM files.
type Leaf struct {
	Name     string
	CertFile string // the leaf certificate (PEM)
	KeyFile  string // its private key (PEM, mode 0600)
	CAFile   string // the issuing CA's certificate (PEM)
	// Hosts are the subject alternative names: IP literals become IP SANs,
	// anything else a DNS SAN. The first one is also the Common Name.
	Hosts []string
}

// certLifetime is long enough for a `make demo` session, short enough that
// a leaked test key is worthless soon.
const certLifetime = 7 * 24 * time.Hour

// NewTestCA makes a fresh CA (ca.crt, ca.key) in dir.
func NewTestCA(dir string) (*TestCA, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("test CA dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("test CA dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("test CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Parley test CA", Organization: []string{"Parley integration tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("test CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("test CA certificate: %w", err)
	}
	ca := &TestCA{Dir: dir, CertFile: filepath.Join(dir, "ca.crt"), KeyFile: filepath.Join(dir, "ca.key"), cert: cert, key: key}
	if err := writePEM(ca.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	if err := writeKey(ca.KeyFile, key); err != nil {
		return nil, err
	}
	return ca, nil
}

// StartTestCA is NewTestCA in a temp dir for t.
func StartTestCA(t testing.TB) *TestCA {
	t.Helper()
	ca, err := NewTestCA(TempDir(t, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

var leafNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Issue writes NAME.crt and NAME.key in the CA's dir: a leaf certificate
// for hosts (default "127.0.0.1"), usable both as a TLS server and as a TLS
// client certificate.
func (ca *TestCA) Issue(name string, hosts ...string) (Leaf, error) {
	if !leafNameRE.MatchString(name) || name == "ca" {
		return Leaf{}, fmt.Errorf("test CA: bad leaf name %q", name)
	}
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Leaf{}, fmt.Errorf("test CA: key for %s: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return Leaf{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"Parley integration tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return Leaf{}, fmt.Errorf("test CA: certificate for %s: %w", name, err)
	}
	l := Leaf{
		Name:     name,
		CertFile: filepath.Join(ca.Dir, name+".crt"),
		KeyFile:  filepath.Join(ca.Dir, name+".key"),
		CAFile:   ca.CertFile,
		Hosts:    append([]string(nil), hosts...),
	}
	if err := writePEM(l.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return Leaf{}, err
	}
	if err := writeKey(l.KeyFile, key); err != nil {
		return Leaf{}, err
	}
	return l, nil
}

// MustIssue is Issue for tests.
func (ca *TestCA) MustIssue(t testing.TB, name string, hosts ...string) Leaf {
	t.Helper()
	l, err := ca.Issue(name, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Pool is a certificate pool holding only this CA.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TLSConfig loads the leaf into a TLS 1.2+ configuration that presents it
// and trusts only its CA, both for servers it talks to (RootCAs) and for
// clients that connect (ClientCAs). Callers choose ClientAuth.
func (l Leaf) TLSConfig() (*tls.Config, error) {
	return LoadTLSConfig(l.CertFile, l.KeyFile, l.CAFile)
}

// LoadTLSConfig builds a TLS 1.2+ configuration from PEM files: certFile
// and keyFile are presented (as server and as client); caFile, when not
// empty, is the only trust anchor for peers in both directions.
func LoadTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair %s: %w", certFile, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("load CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("load CA %s: no certificate found", caFile)
		}
		c.RootCAs, c.ClientCAs = pool, pool
	}
	return c, nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if b == nil {
		return errors.New("pem encode failed")
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
