package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/parleygw/parley/integration/harness"
)

// cleanups stops what was started, last first, whatever happened.
type cleanups struct {
	log   *slog.Logger
	steps []cleanup
}

type cleanup struct {
	name string
	fn   func() error
}

func (c *cleanups) push(name string, fn func() error) { c.steps = append(c.steps, cleanup{name, fn}) }

// runFrom runs and removes the steps pushed after mark (a value of len).
func (c *cleanups) runFrom(mark int) {
	for len(c.steps) > mark {
		s := c.steps[len(c.steps)-1]
		c.steps = c.steps[:len(c.steps)-1]
		if err := s.fn(); err != nil {
			c.log.Warn("stop", "what", s.name, "err", err)
		} else {
			c.log.Debug("stopped", "what", s.name)
		}
	}
}

func (c *cleanups) mark() int { return len(c.steps) }

// kamailio is Kamailio started with the harness's configuration but more
// shared memory than the harness gives it: tm keeps every finished
// transaction for its wait timer (5 s), which at several thousand MESSAGEs
// per second needs well over the harness's 64 MB (measured: "out of mem"
// and 500s after about a second at 8k/s).
type kamailio struct {
	proc *harness.Proc
	addr string
	dir  string
}

func launchKamailio(dir string, logw io.Writer, o harness.KamailioOptions, shmMB int) (*kamailio, error) {
	if o.Port == 0 {
		p, err := harness.FindFreePort()
		if err != nil {
			return nil, fmt.Errorf("kamailio: %w", err)
		}
		o.Port = p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("kamailio: %w", err)
	}
	cfg, err := harness.KamailioConfig(o)
	if err != nil {
		return nil, err
	}
	path, err := harness.WriteFile(dir, "kamailio.cfg", cfg, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kamailio config: %w", err)
	}
	if err := harness.CheckKamailioConfig(path); err != nil {
		return nil, err
	}
	k := &kamailio{addr: "127.0.0.1:" + strconv.Itoa(o.Port), dir: dir}
	k.proc, err = harness.Start("kamailio", dir, logw, harness.KamailioBinary,
		"-f", path, "-DD", "-E", "-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"),
		"-w", dir, "-m", strconv.Itoa(shmMB), "-M", "8")
	if err != nil {
		return nil, fmt.Errorf("kamailio: %w", err)
	}
	if err := k.proc.WaitPort(k.addr, 10*time.Second); err != nil {
		k.proc.Kill()
		return nil, fmt.Errorf("kamailio: %w", err)
	}
	return k, nil
}

func (k *kamailio) stop() error {
	err := k.proc.Stop(5 * time.Second)
	if perr := harness.WaitPortClosed(k.addr, 5*time.Second); perr != nil {
		return errors.Join(err, perr)
	}
	return ignoreSignalExit(err)
}

// ignoreSignalExit drops the "signal: terminated/killed" exit of a process
// we stopped ourselves.
func ignoreSignalExit(err error) error {
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) && ee.ExitCode() == -1 {
		return nil
	}
	return err
}

func launchRedis(dir string) (*harness.Redis, error) {
	port, err := harness.FindFreePort()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	r := &harness.Redis{Dir: dir, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	if err := r.Start(); err != nil {
		return nil, err
	}
	return r, nil
}

// tailString keeps the end of s (server output in error reports).
func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
