package harness

import (
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Redis is a redis-server on loopback.
type Redis struct {
	Proc *Proc
	Addr string
	Dir  string
	Port int
	AOF  bool
	logw io.Writer
}

// URL is the redis:// URL Parley is configured with.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// StartRedis starts redis-server on a free port; it is stopped when t ends.
// With aof, it persists every write (appendfsync always) so a restart keeps
// what was acknowledged.
func StartRedis(t testing.TB, aof bool) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not installed (apt-get install redis-server): %v", err)
	}
	r := &Redis{Dir: TempDir(t, "redis"), Port: FreePort(t), AOF: aof}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.Port)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Proc.Stop(5 * time.Second) })
	return r
}

// Start (re)starts the server on the same port and directory.
func (r *Redis) Start() error {
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "",
		"--dir", r.Dir, "--protected-mode", "no"}
	if r.AOF {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	p, err := Start("redis", r.Dir, r.logw, "redis-server", args...)
	if err != nil {
		return err
	}
	r.Proc = p
	if err := p.WaitPort(r.Addr, 10*time.Second); err != nil {
		p.Kill()
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
