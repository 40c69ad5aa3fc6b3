package harness

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// ProsodyOptions configures a Prosody server on loopback.
type ProsodyOptions struct {
	// Domain is the VirtualHost; default "xmpp.test".
	Domain string
	// C2SPort and ComponentPort are TCP ports on 127.0.0.1; 0 picks a free one.
	C2SPort, ComponentPort int
	// Components maps a component domain to its secret. All components
	// share ComponentPort; without components Prosody does not listen on it.
	Components map[string]string
	// Users maps a local user (node part) to its password; they are
	// registered offline with prosodyctl before the server starts.
	Users map[string]string
	// Limits keeps Prosody's (Debian's default) c2s/s2s bandwidth limits.
	// False lifts them: benchmarks push thousands of stanzas per second
	// over one connection.
	Limits bool
	// Offline stores messages for known users who are not online, as a
	// production server does (the demo). Tests leave it off, so that a
	// message to an offline or unknown user bounces at once.
	Offline bool
	// LogLevel is Prosody's minimum log level; default "info".
	LogLevel string
}

// Prosody is a running Prosody server.
type Prosody struct {
	Proc          *Proc
	Dir           string
	C2SAddr       string
	ComponentAddr string
	Opts          ProsodyOptions

	cfgPath string
	logw    io.Writer
	prevOut string
}

// LaunchProsody writes a configuration into dir, registers o.Users and
// starts Prosody in the foreground. It returns once both the c2s and the
// component port accept connections. logw, when not nil, receives the
// server's output.
func LaunchProsody(dir string, logw io.Writer, o ProsodyOptions) (*Prosody, error) {
	if _, err := exec.LookPath("prosody"); err != nil {
		return nil, fmt.Errorf("prosody not installed (apt-get install prosody): %w", err)
	}
	if o.Domain == "" {
		o.Domain = "xmpp.test"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.C2SPort == 0 || o.ComponentPort == 0 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, fmt.Errorf("prosody: %w", err)
		}
		if o.C2SPort == 0 {
			o.C2SPort = ports[0]
		}
		if o.ComponentPort == 0 {
			o.ComponentPort = ports[1]
			if o.ComponentPort == o.C2SPort {
				o.ComponentPort = ports[0]
			}
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("prosody run dir: %w", err)
	}
	p := &Prosody{
		Dir:           dir,
		C2SAddr:       loopbackAddr(o.C2SPort),
		ComponentAddr: loopbackAddr(o.ComponentPort),
		Opts:          o,
		logw:          logw,
	}
	for _, sub := range []string{"data", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("prosody run dir: %w", err)
		}
	}
	p.cfgPath, err = WriteFile(dir, "prosody.cfg.lua", prosodyConfig(dir, o), 0o644)
	if err != nil {
		return nil, fmt.Errorf("prosody config: %w", err)
	}
	for _, user := range sortedKeys(o.Users) {
		out, err := exec.Command("prosodyctl", "--config", p.cfgPath, "register", user, o.Domain, o.Users[user]).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("prosodyctl register %s@%s: %w\n%s", user, o.Domain, err, out)
		}
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	slog.Debug("prosody started", "dir", dir, "c2s", p.C2SAddr, "component", p.ComponentAddr)
	return p, nil
}

// StartProsody starts Prosody in a temp dir and stops it when t ends.
func StartProsody(t testing.TB, o ProsodyOptions) *Prosody {
	t.Helper()
	dir := TempDir(t, "prosody")
	p, err := LaunchProsody(dir, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("prosody output:\n%s", tail(p.Output()))
		}
	})
	return p
}

func (p *Prosody) start() error {
	proc, err := Start("prosody", p.Dir, p.logw, "prosody", "--config", p.cfgPath, "-F")
	if err != nil {
		return fmt.Errorf("prosody: %w", err)
	}
	p.Proc = proc
	addrs := []string{p.C2SAddr}
	if len(p.Opts.Components) > 0 { // Prosody opens the component port only for components
		addrs = append(addrs, p.ComponentAddr)
	}
	for _, addr := range addrs {
		if err := proc.WaitPort(addr, 20*time.Second); err != nil {
			proc.Kill()
			return fmt.Errorf("prosody: %w", err)
		}
	}
	return nil
}

// Output is everything Prosody printed, across restarts.
func (p *Prosody) Output() string {
	if p.Proc == nil {
		return p.prevOut
	}
	return p.prevOut + p.Proc.Output()
}

// Stop stops Prosody and waits until its ports are closed.
func (p *Prosody) Stop() error {
	if p.Proc == nil {
		return nil
	}
	err := p.Proc.Stop(5 * time.Second)
	for _, addr := range []string{p.C2SAddr, p.ComponentAddr} {
		if perr := WaitPortClosed(addr, 5*time.Second); perr != nil {
			return fmt.Errorf("prosody stop: %w", perr)
		}
	}
	if err != nil && !isSignalExit(err) {
		return fmt.Errorf("prosody stop: %w", err)
	}
	return nil
}

// Restart stops Prosody, waits for its ports to close and starts it again
// with the same configuration and data.
func (p *Prosody) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	p.prevOut = p.Output()
	p.Proc = nil
	return p.start()
}

// isSignalExit reports whether err is the exit status of a process ended
// by the signal we sent (SIGTERM/SIGKILL) rather than a failure.
func isSignalExit(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	if ee.ExitCode() == -1 {
		return true // killed by a signal
	}
	return false
}

func prosodyConfig(dir string, o ProsodyOptions) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("-- Generated by Parley's integration harness (integration/harness/prosody.go).\n")
	w("run_as_root = true -- the harness runs as root; mod_posix refuses otherwise\n")
	w("pidfile = %s\n", luaString(filepath.Join(dir, "prosody.pid")))
	w("data_path = %s\n", luaString(filepath.Join(dir, "data")))
	w("certificates = %s -- empty: TLS is off; only silences certmanager\n", luaString(filepath.Join(dir, "certs")))
	w("log = { { levels = { min = %s }, to = \"console\" } }\n", luaString(o.LogLevel))
	w("\n-- nagle=false sets TCP_NODELAY: without it every stanza hop costs ~40 ms on loopback.\n")
	w("network_settings = { nagle = false }\n\n")
	w("interfaces = { \"127.0.0.1\" }\nlocal_interfaces = { \"127.0.0.1\" }\n")
	w("c2s_ports = { %d }\nc2s_direct_tls_ports = { }\ns2s_ports = { }\n", o.C2SPort)
	w("component_ports = { %d } -- every Component below shares this port\n", o.ComponentPort)
	w("component_interfaces = { \"127.0.0.1\" }\n\n")

	mods := []string{"roster", "saslauth", "disco", "ping", "posix"}
	disabled := []string{"s2s", "s2s_auth_certs"}
	if o.Offline {
		mods = append(mods, "offline")
	} else {
		disabled = append(disabled, "offline")
	}
	if o.Limits {
		mods = append(mods, "limits")
		w("-- Limits on: Debian's default bandwidth limits.\n")
		w("limits = { c2s = { rate = \"10kb/s\" }; s2sin = { rate = \"30kb/s\" } }\n")
	} else {
		disabled = append(disabled, "limits")
		w("-- Limits off: mod_limits is not loaded, so c2s has no rate limit (Debian's default\n")
		w("-- config throttles c2s to 10kb/s; benchmarks need thousands of stanzas/s per connection).\n")
	}
	if o.Offline {
		w("-- offline is on: messages to a known user who is offline are stored.\n")
	} else {
		w("-- offline is disabled: a message to an offline or unknown user bounces at once.\n")
	}
	w("modules_enabled = { %s }\n", luaList(mods))
	w("modules_disabled = { %s }\n\n", luaList(disabled))
	w("authentication = \"internal_hashed\" -- SCRAM-SHA-1 works without TLS\n")
	w("c2s_require_encryption = false -- no TLS at all (mod_tls not loaded)\n")
	w("allow_unencrypted_plain_auth = true -- PLAIN on plaintext, loopback tests only\n")
	w("s2s_require_encryption = false\n\n")
	w("VirtualHost %s\n", luaString(o.Domain))
	for _, d := range sortedKeys(o.Components) {
		w("\nComponent %s\n\tcomponent_secret = %s\n", luaString(d), luaString(o.Components[d]))
	}
	return b.String()
}

func luaList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = luaString(s)
	}
	return strings.Join(q, "; ")
}

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
