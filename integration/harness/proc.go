// Package harness starts real servers (Redis, Prosody, Kamailio) and Parley
// itself on loopback, each in its own temp directory, for tests and for
// `make demo`. Every process is stopped by PID when the test ends.
//
// It must not import Parley's own packages: it drives them from outside,
// as an operator would.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a running child process with its combined output kept for
// failure reports.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Start runs name with args in dir. Output goes to an in-memory buffer and,
// when logw is not nil, also to logw.
func Start(name, dir string, logw io.Writer, bin string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, out: &syncBuffer{}, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var w io.Writer = p.out
	if logw != nil {
		w = io.MultiWriter(p.out, prefixWriter(logw, name))
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Own process group, so stopping also reaches forked children
	// (Kamailio forks workers).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs the whole group.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return p.err
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Kill sends SIGKILL to the group and waits for the process to end.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// WaitPort waits until addr accepts TCP connections, or the process exits,
// or timeout passes.
func (p *Proc) WaitPort(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited before listening on %s: %v\n%s", p.Name, addr, p.err, tail(p.Output()))
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening on %s after %s\n%s", p.Name, addr, timeout, tail(p.Output()))
}

// WaitOutput waits until the process output contains s.
func (p *Proc) WaitOutput(ctx context.Context, s string) error {
	for {
		if strings.Contains(p.Output(), s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %q not seen: %w\n%s", p.Name, s, ctx.Err(), tail(p.Output()))
		case <-p.done:
			if strings.Contains(p.Output(), s) {
				return nil
			}
			return fmt.Errorf("%s exited before printing %q\n%s", p.Name, s, tail(p.Output()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitPortClosed waits until nothing accepts on addr (a killed process may
// linger as a zombie for a moment; its port tells).
func WaitPortClosed(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s still open after %s", addr, timeout)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and is
// also free for UDP (SIP listens on both).
func FreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free port found")
	return 0
}

// TempDir makes a run directory that survives the test when it failed and
// PARLEY_KEEP_RUN is set, so an operator can read the servers' files.
func TempDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "parley-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("PARLEY_KEEP_RUN") != "" {
			t.Logf("kept run directory %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// WriteFile writes content to dir/name, creating parent directories.
func WriteFile(dir, name, content string, mode os.FileMode) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(content), mode)
}

func tail(s string) string {
	const max = 4000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep memory bounded for long runs (benchmarks): drop the oldest half.
	if s.b.Len() > 8<<20 {
		rest := append([]byte(nil), s.b.Bytes()[s.b.Len()/2:]...)
		s.b.Reset()
		s.b.Write(rest)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type linePrefixer struct {
	w      io.Writer
	prefix string
	mu     sync.Mutex
	mid    bool
}

func prefixWriter(w io.Writer, name string) io.Writer {
	return &linePrefixer{w: w, prefix: "[" + name + "] "}
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	for _, c := range p {
		if !l.mid {
			b.WriteString(l.prefix)
			l.mid = true
		}
		b.WriteByte(c)
		if c == '\n' {
			l.mid = false
		}
	}
	if _, err := l.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
