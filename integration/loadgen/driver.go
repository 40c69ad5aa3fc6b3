package loadgen

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sender puts generated messages on the path under test. Send may buffer;
// Flush pushes what was buffered. Send may block (e.g. a bound on
// transactions in flight) but must not wait for delivery.
type Sender interface {
	Send(tag uint32, seq uint64, body []byte) error
	Flush() error
}

// RunConfig describes one measurement.
type RunConfig struct {
	// Warmup is sent but not measured; Duration is the measuring window.
	Warmup, Duration time.Duration
	// Rate > 0 paces sending open-loop at Rate messages per second
	// (latency run). Rate == 0 runs closed-loop: keep Window messages in
	// flight, refilling in batches of at least Batch (throughput run).
	Rate   float64
	Window int
	Batch  int
	// BodySize pads bodies to this many bytes.
	BodySize int
	// Drain bounds the wait for stragglers after sending stops.
	Drain time.Duration
	// Stall ends a closed-loop run with an error when nothing completes
	// for this long; MaxBehind ends an open-loop run when more than this
	// many messages are outstanding (the path cannot keep up).
	Stall     time.Duration
	MaxBehind int64
	// MinDelivered extends a closed-loop measuring window past Duration
	// until at least this many deliveries fell inside it (default 1), so
	// a machine that stalls for a moment still yields a figure; Measured
	// in the Result is the window's real length.
	MinDelivered int64
	// KeepSamples keeps every latency sample with its send time in the
	// Result (Samples), for a latency timeline.
	KeepSamples bool
}

func (c *RunConfig) defaults() {
	if c.Window <= 0 {
		c.Window = 100
	}
	if c.Batch <= 0 {
		c.Batch = max(1, c.Window/10)
	}
	if c.Batch > c.Window {
		c.Batch = c.Window
	}
	if c.Drain <= 0 {
		c.Drain = 3 * time.Second
	}
	if c.Stall <= 0 {
		c.Stall = 5 * time.Second
	}
	if c.MaxBehind <= 0 {
		c.MaxBehind = max(1000, int64(c.Rate*2))
	}
	if c.BodySize <= 0 {
		c.BodySize = 64
	}
	if c.MinDelivered <= 0 {
		c.MinDelivered = 1
	}
}

// Result is what one measurement found.
type Result struct {
	Mode   string  `json:"mode"` // "closed" or "paced"
	Window int     `json:"window,omitempty"`
	Rate   float64 `json:"offered_rate,omitempty"` // paced: offered msg/s

	Sent     int64 `json:"sent"`
	Received int64 `json:"received"` // unique deliveries
	Failed   int64 `json:"failed"`   // error answers (unique messages)
	Lost     int64 `json:"lost"`     // sent, neither delivered nor failed after the drain
	Dups     int64 `json:"duplicates"`

	// Throughput is deliveries per second over the measuring window.
	Throughput float64       `json:"throughput"`
	Measured   time.Duration `json:"measured_ns"`

	// Latency of messages sent inside the measuring window.
	Samples int           `json:"samples"`
	P50     time.Duration `json:"p50_ns"`
	P90     time.Duration `json:"p90_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`

	// SendLag is how far the paced sender fell behind its schedule at
	// worst (generator overload shows here, not as path latency).
	SendLag time.Duration `json:"send_lag_ns,omitempty"`

	FailReasons map[string]int64 `json:"fail_reasons,omitempty"`
	Err         string           `json:"error,omitempty"`

	// Timeline holds, with KeepSamples, every latency sample in arrival
	// order: send time (ns since the run's start) and latency (ns).
	Timeline [][2]int64 `json:"-"`
}

// ErrStalled is returned when a closed-loop run makes no progress.
var ErrStalled = errors.New("path stalled: nothing completed")

// Run performs one measurement: it starts a phase on rec, offers load
// through s and waits for stragglers. The Result is filled in as far as
// the run got, also when an error is returned.
func Run(ctx context.Context, rec *Recorder, s Sender, cfg RunConfig) (Result, error) {
	cfg.defaults()
	clock := rec.Clock()
	ph := rec.NewPhase()
	res := Result{Mode: "closed", Window: cfg.Window}
	if cfg.Rate > 0 {
		res = Result{Mode: "paced", Rate: cfg.Rate}
	}
	t0 := clock.Now()
	mStart := t0 + int64(cfg.Warmup)
	mEnd := mStart + int64(cfg.Duration)
	ph.setLatencyWindow(mStart, mEnd, cfg.KeepSamples)

	r := &runner{ctx: ctx, ph: ph, s: s, clock: clock, cfg: cfg, mStart: mStart, mEnd: mEnd}
	var err error
	if cfg.Rate > 0 {
		err = r.paced(t0)
	} else {
		err = r.closed()
	}
	if ferr := s.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("flush: %w", ferr)
	}
	res.Sent = int64(r.seq)
	if r.snapEnd > r.snapStart && r.tEnd > r.tStart {
		res.Measured = time.Duration(r.tEnd - r.tStart)
		res.Throughput = float64(r.snapEnd-r.snapStart) / res.Measured.Seconds()
	}
	res.SendLag = time.Duration(r.maxLag)

	// Drain: wait for stragglers (bounded), even after an error.
	drainUntil := time.Now().Add(cfg.Drain)
	tick := time.NewTicker(5 * time.Millisecond)
	for ph.Completed() < res.Sent && time.Now().Before(drainUntil) && ctx.Err() == nil {
		<-tick.C
	}
	tick.Stop()

	res.Received = ph.Received()
	res.Failed = ph.failed.Load()
	res.Dups = ph.dups.Load()
	res.Lost = res.Sent - ph.Completed()
	lat := ph.latencies()
	res.Samples = len(lat)
	res.P50 = Percentile(lat, 0.50)
	res.P90 = Percentile(lat, 0.90)
	res.P99 = Percentile(lat, 0.99)
	res.Max = Percentile(lat, 1)
	if sent, lat := ph.samples(); len(sent) > 0 {
		res.Timeline = make([][2]int64, len(sent))
		for i := range sent {
			res.Timeline[i] = [2]int64{sent[i] - t0, lat[i]}
		}
	}
	if fr := ph.failReasons(); len(fr) > 0 {
		res.FailReasons = fr
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		res.Err = err.Error()
	}
	return res, err
}

type runner struct {
	ctx            context.Context
	ph             *Phase
	s              Sender
	clock          *Clock
	cfg            RunConfig
	mStart, mEnd   int64
	seq            uint64
	buf            []byte
	snapStart      int64 // completions... received count at tStart
	snapEnd        int64
	tStart, tEnd   int64
	started        bool
	maxLag         int64
	lastProgress   int64
	lastCompletion int64
}

// snapshot takes the measuring-window snapshots; it reports whether the
// window is over.
func (r *runner) snapshot(now int64) bool {
	if !r.started && now >= r.mStart {
		r.snapStart, r.tStart, r.started = r.ph.Received(), now, true
	}
	if now >= r.mEnd {
		if !r.started {
			r.snapStart, r.tStart, r.started = r.ph.Received(), now, true
		}
		got := r.ph.Received()
		if r.cfg.Rate == 0 && got-r.snapStart < r.cfg.MinDelivered {
			return false // closed loop: extend the window (stall detection still applies)
		}
		r.snapEnd, r.tEnd = got, now
		return true
	}
	return false
}

func (r *runner) send() error {
	tag := r.ph.Tag
	r.buf = AppendBody(r.buf[:0], tag, r.seq, r.clock.Now(), r.cfg.BodySize)
	if err := r.s.Send(tag, r.seq, r.buf); err != nil {
		return fmt.Errorf("send #%d: %w", r.seq, err)
	}
	r.seq++
	return nil
}

func (r *runner) closed() error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	r.lastProgress = r.clock.Now()
	for {
		now := r.clock.Now()
		if r.snapshot(now) {
			return nil
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		done := r.ph.Completed()
		if done != r.lastCompletion {
			r.lastCompletion, r.lastProgress = done, now
		} else if now-r.lastProgress > int64(r.cfg.Stall) {
			return fmt.Errorf("%w for %s with %d in flight", ErrStalled, r.cfg.Stall, int64(r.seq)-done)
		}
		free := int64(r.cfg.Window) - (int64(r.seq) - done)
		if free >= int64(r.cfg.Batch) || (r.seq == 0 && free > 0) {
			for ; free > 0; free-- {
				if err := r.send(); err != nil {
					return err
				}
			}
			if err := r.s.Flush(); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
			continue
		}
		// Wait for a completion, but wake for the window marks and the
		// stall check.
		wait := 20 * time.Millisecond
		for _, mark := range [...]int64{r.mStart, r.mEnd} {
			if d := time.Duration(mark - now); d > 0 && d < wait {
				wait = d
			}
		}
		timer.Reset(wait)
		select {
		case <-r.ph.notify:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
}

func (r *runner) paced(t0 int64) error {
	interval := float64(time.Second) / r.cfg.Rate
	total := uint64(float64(r.cfg.Warmup+r.cfg.Duration) / interval)
	for r.seq < total {
		now := r.clock.Now()
		r.snapshot(now)
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if behind := int64(r.seq) - r.ph.Completed(); behind > r.cfg.MaxBehind {
			return fmt.Errorf("path cannot keep up with %.0f msg/s: %d messages outstanding", r.cfg.Rate, behind)
		}
		due := uint64(float64(now-t0)/interval) + 1
		if due > total {
			due = total
		}
		if r.seq < due {
			if lag := now - (t0 + int64(float64(r.seq)*interval)); lag > r.maxLag {
				r.maxLag = lag
			}
			for r.seq < due {
				if err := r.send(); err != nil {
					return err
				}
			}
			if err := r.s.Flush(); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
			continue
		}
		next := t0 + int64(float64(r.seq)*interval)
		if d := time.Duration(next - r.clock.Now()); d > 0 {
			time.Sleep(d)
		}
	}
	// The window ends on time even if sending finished a little early.
	for {
		now := r.clock.Now()
		if r.snapshot(now) {
			return nil
		}
		if d := time.Duration(r.mEnd - now); d > 0 {
			time.Sleep(min(d, 5*time.Millisecond))
		}
	}
}
