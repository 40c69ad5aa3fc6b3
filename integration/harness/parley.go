package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ParleyOptions describe one Parley process.
type ParleyOptions struct {
	Bin  string // the parley binary (BuildParley)
	Role string // all, component, sip
	Name string // for logs and the run directory; default Role

	ComponentServer  string // XMPP server's component address
	Secret           string
	ComponentDomains []string

	SIPListen     string // host:port for UDP and TCP
	SIPDomains    []string
	OutboundProxy string
	Trusted       []string
	DeliveryWait  string // e.g. "2s"; default config's

	RedisURL string // empty: memory store
	Instance string // consumer name (split mode: stable across restarts)

	MetricsListen string // host:port; required (readiness is read from /healthz)
	LogLevel      string
	Extra         string // more TOML appended verbatim
}

// Parley is a running parley process.
type Parley struct {
	Proc *Proc
	Dir  string
	Opts ParleyOptions
	logw io.Writer
}

var buildOnce struct {
	sync.Mutex
	path string
}

// BuildParley builds cmd/parley once per test binary and returns its path.
func BuildParley(t testing.TB) string {
	t.Helper()
	buildOnce.Lock()
	defer buildOnce.Unlock()
	if buildOnce.path != "" {
		return buildOnce.path
	}
	dir, err := os.MkdirTemp("", "parley-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	buildOnce.path = bin
	return bin
}

// Build compiles cmd/parley into dir.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "parley")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/parley")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build parley: %v\n%s", err, out)
	}
	return bin, nil
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Config renders the options as parley.toml.
func (o ParleyOptions) Config(dir string) string {
	q := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[log]\nlevel = %q\n\n", level)
	if o.RedisURL != "" {
		fmt.Fprintf(&b, "[store]\nbackend = \"redis\"\nredis_url = %q\ninstance = %q\n\n", o.RedisURL, o.Instance)
	} else {
		fmt.Fprintf(&b, "[store]\nbackend = \"memory\"\n\n")
	}
	fmt.Fprintf(&b, "[component]\nserver = %q\nsecret_file = %q\ndomains = %s\n\n",
		o.ComponentServer, filepath.Join(dir, "component.secret"), q(o.ComponentDomains))
	fmt.Fprintf(&b, "[sip]\nlisten_udp = %q\nlisten_tcp = %q\ndomains = %s\noutbound_proxy = %q\ntrusted_proxies = %s\n",
		o.SIPListen, o.SIPListen, q(o.SIPDomains), o.OutboundProxy, q(o.Trusted))
	if o.DeliveryWait != "" {
		fmt.Fprintf(&b, "delivery_wait = %q\n", o.DeliveryWait)
	}
	fmt.Fprintf(&b, "\n[metrics]\nlisten = %q\n\n%s\n", o.MetricsListen, o.Extra)
	return b.String()
}

// LaunchParley writes the configuration into dir and starts parley, waiting
// until /healthz says every role is ready.
func LaunchParley(dir string, logw io.Writer, o ParleyOptions) (*Parley, error) {
	if o.Name == "" {
		o.Name = o.Role
	}
	if _, err := WriteFile(dir, "component.secret", o.Secret+"\n", 0o600); err != nil {
		return nil, err
	}
	if _, err := WriteFile(dir, "parley.toml", o.Config(dir), 0o644); err != nil {
		return nil, err
	}
	p := &Parley{Dir: dir, Opts: o, logw: logw}
	return p, p.Start()
}

// StartParley is LaunchParley for tests: stopped when t ends.
func StartParley(t testing.TB, o ParleyOptions) *Parley {
	t.Helper()
	name := o.Name
	if name == "" {
		name = o.Role
	}
	p, err := LaunchParley(TempDir(t, "parley-"+name), testLog(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.Proc != nil {
			p.Proc.Stop(10 * time.Second)
		}
	})
	return p
}

// Start (re)starts the process with the same configuration.
func (p *Parley) Start() error {
	proc, err := Start(p.Opts.Name, p.Dir, p.logw, p.Opts.Bin, p.Opts.Role, "-c", filepath.Join(p.Dir, "parley.toml"))
	if err != nil {
		return err
	}
	p.Proc = proc
	if err := p.WaitReady(20 * time.Second); err != nil {
		proc.Kill()
		return err
	}
	return nil
}

// WaitReady polls /healthz until it answers 200.
func (p *Parley) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	url := "http://" + p.Opts.MetricsListen + "/healthz"
	var last string
	for ctx.Err() == nil {
		if p.Proc.Exited() {
			return fmt.Errorf("parley %s exited while starting:\n%s", p.Opts.Name, tail(p.Proc.Output()))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("parley %s not ready after %s (last /healthz: %s):\n%s", p.Opts.Name, timeout, last, tail(p.Proc.Output()))
}

// Metric reads one sample's value from /metrics (0 when absent). name may
// include labels exactly as exposed, e.g. `foo_total{kind="x"}`.
func (p *Parley) Metric(name string) (float64, error) {
	resp, err := http.Get("http://" + p.Opts.MetricsListen + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
		}
	}
	return 0, nil
}

// testLog sends server output to the test log only when asked (-v is too
// noisy for five servers); the output is always kept for failure reports.
func testLog(t testing.TB) io.Writer {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return os.Stderr
	}
	return nil
}
