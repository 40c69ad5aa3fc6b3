// Command bench measures chat throughput and latency through Parley's full
// path, always beside a baseline measured in the same run, and writes
// report.md and report.json (make bench).
//
// The baseline is an XMPP client → Prosody → a trivial echo component →
// Prosody → the client: the ceiling any component can reach through the
// same Prosody. Parley is measured XMPP→SIP (client → Prosody → Parley →
// Kamailio → SIP UA) and SIP→XMPP (SIP UA → Kamailio → Parley → Prosody →
// client), with `parley all` (memory store) and with `parley component` +
// `parley sip` sharing Redis. Each path gets a closed-loop run (a window of
// messages in flight: peak deliveries per second) and an open-loop run
// paced at half that peak (one-way latency p50/p99).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

type options struct {
	out           string
	duration      time.Duration
	warmup        time.Duration
	settle        time.Duration
	drain         time.Duration
	quick         bool
	window        int
	conversations int
	bodySize      int
	sipTransport  string
	kamailioShm   int
	quietWait     time.Duration
	timeline      bool
	keep          bool
	verbose       bool
}

func (o *options) defaults() {
	if o.quick {
		if o.duration == 0 || o.duration > time.Second {
			o.duration = time.Second
		}
		if o.warmup == 0 || o.warmup > 300*time.Millisecond {
			o.warmup = 300 * time.Millisecond
		}
		o.settle = 100 * time.Millisecond
		o.drain = 2 * time.Second
		o.quietWait = 0
	}
	if o.duration <= 0 {
		o.duration = 5 * time.Second
	}
	if o.warmup < 0 {
		o.warmup = 0
	}
	if o.settle <= 0 {
		o.settle = 500 * time.Millisecond
	}
	if o.drain <= 0 {
		o.drain = 3 * time.Second
	}
	if o.window <= 0 {
		o.window = 100
	}
	if o.conversations <= 0 {
		o.conversations = 20
	}
	if o.bodySize <= 0 {
		o.bodySize = 64
	}
	if o.sipTransport == "" {
		o.sipTransport = "udp"
	}
	if o.kamailioShm <= 0 {
		o.kamailioShm = 1024
	}
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "bench", "directory for report.md and report.json")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measuring window of each run, after the warm-up")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measuring window (sent, not measured)")
	flag.BoolVar(&o.quick, "quick", false, "short runs (1 s) to check the bench itself; figures are rough")
	flag.IntVar(&o.window, "window", 100, "closed-loop runs: messages in flight")
	flag.IntVar(&o.conversations, "conversations", 20, "distinct sender/recipient pairs the load is spread over")
	flag.IntVar(&o.bodySize, "body", 64, "message body size in bytes")
	flag.StringVar(&o.sipTransport, "sip-transport", "udp", "SIP transport of the load generators and Kamailio→Parley: udp or tcp")
	flag.IntVar(&o.kamailioShm, "kamailio-shm", 1024, "Kamailio shared memory in MB (tm keeps finished transactions 5 s)")
	flag.DurationVar(&o.quietWait, "quiet-wait", time.Minute, "before each run, wait (in all at most this long) while processes outside the bench keep the CPUs busy")
	flag.BoolVar(&o.timeline, "timeline", false, "also write OUT/<row>-latency.csv: every latency sample of the half-peak runs with its send time")
	flag.BoolVar(&o.keep, "keep", false, "keep the servers' run directory")
	flag.BoolVar(&o.verbose, "v", false, "debug log and the servers' output on stderr")
	flag.Parse()

	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// sipgo logs some transport events through its package default logger
	// only; keep its warnings about connection reference counts off the
	// console unless asked.
	if !o.verbose {
		sip.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, log)
	if err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
	fmt.Print(rep.Summary())
	if n := rep.ErrorRows(); n > 0 {
		log.Warn("some rows could not be measured: see the report", "rows", n, "report", filepath.Join(o.out, "report.md"))
	}
}

// run measures everything and writes the reports into o.out. It returns an
// error only when no report could be produced (the baseline needs
// Prosody); Parley failures are rows marked as errors in the report.
func run(ctx context.Context, o options, log *slog.Logger) (*Report, error) {
	o.defaults()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		log.Info("run directory kept", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var logw io.Writer
	if o.verbose {
		logw = os.Stderr
	}

	started := time.Now()
	rep := newReport(o, machineFacts(ctx), started)
	b := &bench{o: o, log: log, logw: logw, dir: dir, rep: rep, cpu: newCPUWatch(), cl: &cleanups{log: log}, quietLeft: o.quietWait}
	defer b.cl.runFrom(0)

	if err := b.measureAll(ctx); err != nil {
		return nil, err
	}
	rep.finish(time.Since(started))
	if err := rep.write(o.out); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return rep, errors.New("interrupted: the report is incomplete")
	}
	return rep, nil
}
