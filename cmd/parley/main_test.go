package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s3cret-value\n"), 0o600)
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[component]\nsecret_file = \""+secret+"\"\n"), 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[component]\nsecret_file = \""+secret+"\"\n\n[sip]\noutbound_proxy = \"proxy.example:5060\"\nlisten_upd = \"127.0.0.1:5080\"\n"), 0o644)
	component := filepath.Join(dir, "component.toml")
	os.WriteFile(component, []byte("[component]\nsecret_file = \""+secret+"\"\n"), 0o644)

	tests := []struct {
		name   string
		args   []string
		code   int
		output []string // each must appear in stdout+stderr
	}{
		{"version", []string{"version"}, 0, []string{"parley "}},
		{"check good", []string{"check-config", "-c", good}, 0, []string{"is valid", "sip.test"}},
		{"check bad names key and line", []string{"check-config", "-c", bad}, 1, []string{
			"line 5: sip.outbound_proxy", "line 6: sip.listen_upd: unknown key"}},
		{"check missing file", []string{"check-config", "-c", filepath.Join(dir, "nope.toml")}, 1, []string{"no such file"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"split role needs redis", []string{"component", "-c", component}, 1, []string{`store.backend = "redis"`}},
		{"bad config refuses to start", []string{"all", "-c", bad}, 2, []string{"line 5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(tt.args, &out, &out)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, out.String())
			}
			for _, want := range tt.output {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			if strings.Contains(out.String(), "s3cret-value") {
				t.Errorf("secret leaked:\n%s", out.String())
			}
		})
	}
}
