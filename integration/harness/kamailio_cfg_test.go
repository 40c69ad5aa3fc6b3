package harness

import (
	"path/filepath"
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
