package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultsAreValid(t *testing.T) {
	cfg := Default()
	if err := validate(&cfg, nil); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestParseProblemsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name, toml string
		key        string
		line       int
		msg        string
	}{
		{"syntax", "[sip]\nlisten_udp = \n", "sip.listen_udp", 2, ""},
		{"unknown key", "[sip]\nlisten_udp = \"127.0.0.1:5080\"\noutbund_proxy = \"127.0.0.1:5060\"\n", "sip.outbund_proxy", 3, "unknown key"},
		{"bad proxy", "[log]\nlevel = \"info\"\n[sip]\noutbound_proxy = \"kamailio:5060\"\n", "sip.outbound_proxy", 4, "IP literal"},
		{"bad level", "[log]\nlevel = \"loud\"\n", "log.level", 2, "not one of"},
		{"bad backend", "[store]\nbackend = \"etcd\"\n", "store.backend", 2, "memory or redis"},
		{"domain both sides", "[sip]\ndomains = [\"sip.test\"]\n", "sip.domains", 2, "one side only"},
		{"bad trusted", "[sip]\ntrusted_proxies = [\"kamailio\"]\n", "sip.trusted_proxies", 2, "CIDR"},
		{"bad duration", "[sip]\ndelivery_wait = \"soon\"\n", "sip.delivery_wait", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			err := Parse([]byte(tt.toml), &cfg)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Key == tt.key && (tt.line == 0 || p.Line == tt.line) && strings.Contains(p.Msg, tt.msg) {
					return
				}
			}
			t.Fatalf("no problem for %s line %d containing %q in:\n%v", tt.key, tt.line, tt.msg, err)
		})
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	cfg := Default()
	err := Parse([]byte("[store]\nbackend = \"redis\"\nredis_url = \"redis://:pw@127.0.0.1:6380/1\"\n[sip]\ndelivery_wait = \"500ms\"\n"), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Backend != "redis" || cfg.SIP.DeliveryWait.String() != "500ms" || cfg.SIP.OutboundProxy != "127.0.0.1:5060" {
		t.Fatalf("unexpected %+v", cfg)
	}
	if got := RedactURL(cfg.Store.RedisURL); strings.Contains(got, "pw") {
		t.Fatalf("password not redacted: %s", got)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("s3cret\n"), 0o640)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("s3cret\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)

	if s, err := (Component{SecretFile: good}).LoadSecret(); err != nil || s != "s3cret" {
		t.Fatalf("good: %q %v", s, err)
	}
	for _, f := range []string{open, empty, filepath.Join(dir, "missing")} {
		if _, err := (Component{SecretFile: f}).LoadSecret(); err == nil {
			t.Errorf("%s: want error", f)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
	if s, err := (Component{SecretFile: filepath.Join(dir, "missing"), Secret: "inline"}).LoadSecret(); err != nil || s != "inline" {
		t.Fatalf("fallback: %q %v", s, err)
	}
}
