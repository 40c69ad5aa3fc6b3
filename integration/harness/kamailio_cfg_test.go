package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKamailioConfigChecks(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{"udp", "tcp", "follow"} {
		o := KamailioOptions{Port: 5999, Aliases: []string{"lync.test"}, XMPPDomains: []string{"xmpp.test", "conf.xmpp.test"},
			ParleyAddr: "127.0.0.1:5070", ParleyTransport: tr}
		cfg, err := KamailioConfig(o)
		if err != nil {
			t.Fatal(err)
		}
		path, err := WriteFile(t.TempDir(), filepath.Join("k", "kamailio.cfg"), cfg, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckKamailioConfig(path); err != nil {
			t.Fatalf("transport %s: %v\n%s", tr, err, cfg)
		}
	}
	// Without XMPP domains the config still checks.
	cfg, err := KamailioConfig(KamailioOptions{Port: 5999})
	if err != nil {
		t.Fatal(err)
	}
	path, _ := WriteFile(t.TempDir(), "kamailio.cfg", cfg, 0o644)
	if err := CheckKamailioConfig(path); err != nil {
		t.Fatal(err)
	}
	// A config error is reported.
	path, _ = WriteFile(t.TempDir(), "bad.cfg", cfg+"\nrequest_route { nonsense( }\n", 0o644)
	if err := CheckKamailioConfig(path); err == nil {
		t.Fatal("a broken config passed kamailio -c")
	}
	if _, err := KamailioConfig(KamailioOptions{Port: 1, XMPPDomains: []string{"x.test"}, ParleyAddr: "parley.test:5060"}); err == nil {
		t.Fatal("a DNS name as ParleyAddr was accepted")
	}
}

func TestKamailioTLSConfigChecks(t *testing.T) {
	t.Parallel()
	ca, err := NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("kamailio", "127.0.0.1", "sip.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    KamailioOptions
	}{
		{"lync domains, verified peers", KamailioOptions{
			Port: 5999, TLSPort: 5998, TLSCert: leaf.CertFile, TLSKey: leaf.KeyFile, TLSCA: ca.CertFile,
			LyncDomains: map[string]string{"lync.test": "127.0.0.1:6001", "fabrikam.test": "127.0.0.1:6002"},
			XMPPDomains: []string{"xmpp.test"}, ParleyAddr: "127.0.0.1:5070", ParleyTransport: "follow",
		}},
		{"tls listener only, peers not verified", KamailioOptions{Port: 5999, TLSPort: 5998, TLSCert: leaf.CertFile, TLSKey: leaf.KeyFile}},
	} {
		dir := t.TempDir()
		path, err := WriteKamailioConfig(dir, c.o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := CheckKamailioConfig(path); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		cfg, _ := os.ReadFile(path)
		tlsCfg, err := os.ReadFile(filepath.Join(dir, "tls.cfg"))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, want := range []string{"listen=tls:127.0.0.1:5998", `loadmodule "tls.so"`, `modparam("tls", "config", "tls.cfg")`} {
			if !strings.Contains(string(cfg), want) {
				t.Errorf("%s: kamailio.cfg lacks %q", c.name, want)
			}
		}
		for _, want := range []string{"[server:default]", "[client:default]", "method = TLSv1.2+", "certificate = " + leaf.CertFile} {
			if !strings.Contains(string(tlsCfg), want) {
				t.Errorf("%s: tls.cfg lacks %q:\n%s", c.name, want, tlsCfg)
			}
		}
		verified := strings.Count(string(tlsCfg), "require_certificate = yes") == 2
		if verified != (c.o.TLSCA != "") {
			t.Errorf("%s: peers verified %v, want %v:\n%s", c.name, verified, c.o.TLSCA != "", tlsCfg)
		}
	}
	cfg, err := KamailioConfig(KamailioOptions{Port: 5999, TLSPort: 5998, TLSCert: "a", TLSKey: "b",
		LyncDomains: map[string]string{"lync.test": "127.0.0.1:6001"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`if ($(rd{s.tolower}) == "lync.test") { route(LYNC); exit; }`,
		`$du = "sip:127.0.0.1:6001;transport=tls";`,
		// The Proxy-Require check (512) stays out: Lync's ms-benotify.
		`sanity_check("17895", "7")`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q", want)
		}
	}
}

func TestKamailioOptionErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		o    KamailioOptions
	}{
		{"lync domain without certificate", KamailioOptions{Port: 1, TLSPort: 2, LyncDomains: map[string]string{"lync.test": "127.0.0.1:6001"}}},
		{"lync edge by name", KamailioOptions{Port: 1, TLSPort: 2, TLSCert: "a", TLSKey: "b", LyncDomains: map[string]string{"lync.test": "edge.lync.test:5061"}}},
		{"lync domain also local", KamailioOptions{Port: 1, TLSPort: 2, TLSCert: "a", TLSKey: "b", Aliases: []string{"lync.test"}, LyncDomains: map[string]string{"lync.test": "127.0.0.1:6001"}}},
		{"lync domain also xmpp", KamailioOptions{Port: 1, TLSPort: 2, TLSCert: "a", TLSKey: "b", XMPPDomains: []string{"lync.test"}, ParleyAddr: "127.0.0.1:5070", LyncDomains: map[string]string{"lync.test": "127.0.0.1:6001"}}},
		{"bad lync domain", KamailioOptions{Port: 1, TLSPort: 2, TLSCert: "a", TLSKey: "b", LyncDomains: map[string]string{"lync test": "127.0.0.1:6001"}}},
		{"tls port 0 in a rendered config", KamailioOptions{Port: 1, TLSCert: "a", TLSKey: "b", LyncDomains: map[string]string{"lync.test": "127.0.0.1:6001"}}},
		{"tiny shared memory", KamailioOptions{Port: 1, SharedMemMB: 4}},
		{"quote in a file name", KamailioOptions{Port: 1, TLSPort: 2, TLSCert: `a"b`, TLSKey: "b"}},
	}
	for _, c := range cases {
		if _, err := KamailioConfig(c.o); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
