// Package bench measures the relay under G.711-shaped load: how many
// concurrent calls (50 packets a second each way, 172-byte RTP) it carries
// with less than 0.1% loss and a bounded p99 latency, against a direct
// loopback baseline (sender to receiver, no relay) measured in the same
// run by the same load generator. `make bench` calls Run and reports the
// Result; nothing here prints.
//
// The load generator plays every call's two endpoints from two UDP
// sockets, each endpoint with its own loopback address (127.10.x.y, sent
// with IP_PKTINFO, the sockets bound to the loopback device only), and
// moves packets with sendmmsg/recvmmsg so that it costs less than what it
// measures. It must not know the relay's internals: it drives the relay
// through its public control API.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parleygw/parley/relay"
)

// ErrUnsupported: the load generator needs Linux.
var ErrUnsupported = errors.New("bench: load generator needs Linux (IP_PKTINFO, recvmmsg)")

// Config tunes a run. The zero value is the `make bench` run.
type Config struct {
	// Start is the first call count tried; zero means 250. The search
	// doubles it while a step passes, then bisects.
	Start int
	// Max caps the search; zero means 6000.
	Max int
	// Refine is the number of bisection steps after the first failure;
	// zero means 3.
	Refine int
	// Step is how long each call count is measured; zero means 3 s (after
	// Warmup, zero meaning 500 ms).
	Step, Warmup time.Duration
	// PPS is packets per second per direction of a call; zero means 50.
	PPS int
	// MaxLoss and MaxP99 are a step's pass criteria; zero means 0.1% and
	// 20 ms.
	MaxLoss float64
	MaxP99  time.Duration
	// Secure puts SDES-SRTP on both relay legs (the generator encrypts and
	// the relay decrypts and re-encrypts).
	Secure bool
	// Relay configures the relay under test; its Logger defaults to a
	// discarding one.
	Relay relay.Options
	// SkipDirect skips the baseline.
	SkipDirect bool
}

func (c *Config) defaults() {
	if c.Start <= 0 {
		c.Start = 250
	}
	if c.Max <= 0 {
		c.Max = 6000
	}
	if c.Refine <= 0 {
		c.Refine = 3
	}
	if c.Step <= 0 {
		c.Step = 3 * time.Second
	}
	if c.Warmup <= 0 {
		c.Warmup = 500 * time.Millisecond
	}
	if c.PPS <= 0 {
		c.PPS = 50
	}
	if c.MaxLoss <= 0 {
		c.MaxLoss = 0.001
	}
	if c.MaxP99 <= 0 {
		c.MaxP99 = 20 * time.Millisecond
	}
	if c.Relay.Logger == nil {
		c.Relay.Logger = slog.New(slog.DiscardHandler)
	}
}

// Step is one measured call count on one path.
type Step struct {
	Calls    int           `json:"calls"`
	Sent     uint64        `json:"sent"`
	Received uint64        `json:"received"`
	Loss     float64       `json:"loss"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
	// Offered is the share of the nominal packet rate the generator sent
	// during the step, and SendLagP99 how late it sent against its
	// schedule. A step under 99% of the rate, or more than 50 ms late,
	// measured the generator rather than the path and does not pass.
	Offered    float64       `json:"offered"`
	SendLagP99 time.Duration `json:"send_lag_p99_ns"`
	Pass       bool          `json:"pass"`
	Why        string        `json:"why,omitempty"`
}

// Path is the search on one path.
type Path struct {
	Name string `json:"name"`
	// MaxCalls is the highest call count that passed (0: none did).
	MaxCalls int    `json:"max_calls"`
	Steps    []Step `json:"steps"`
	// GeneratorBound: the highest count failed because the generator fell
	// behind, so the path's real limit is higher.
	GeneratorBound bool `json:"generator_bound"`
}

// Result is a run.
type Result struct {
	Direct Path `json:"direct"`
	Relay  Path `json:"relay"`
	// Ratio is Relay.MaxCalls / Direct.MaxCalls. A relay makes two socket
	// hops where the direct path makes one, so about 0.5 is the ceiling.
	Ratio float64 `json:"ratio"`
	// At half the relay's peak, both paths were measured again; Added* is
	// the relay's latency minus the direct path's.
	HalfPeak      int           `json:"half_peak_calls"`
	DirectAtHalf  Step          `json:"direct_at_half"`
	RelayAtHalf   Step          `json:"relay_at_half"`
	AddedP50      time.Duration `json:"added_p50_ns"`
	AddedP99      time.Duration `json:"added_p99_ns"`
	Secure        bool          `json:"secure"`
	PacketsPerSec int           `json:"pps_per_direction"`
}

// Run measures the direct baseline and the relay. It stops early, with
// what it has, when ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	res := Result{Secure: cfg.Secure, PacketsPerSec: cfg.PPS}
	g, err := newGenerator(cfg)
	if err != nil {
		return res, err
	}
	defer g.close()
	r, err := relay.New(cfg.Relay)
	if err != nil {
		return res, fmt.Errorf("bench: relay: %w", err)
	}
	defer r.Close()

	direct := func(ctx context.Context, n int) (Step, error) { return g.step(ctx, n, nil) }
	viaRelay := func(ctx context.Context, n int) (Step, error) { return g.step(ctx, n, r) }

	if !cfg.SkipDirect {
		res.Direct, err = search(ctx, cfg, "direct", direct)
		if err != nil {
			return res, err
		}
	}
	res.Relay, err = search(ctx, cfg, "relay", viaRelay)
	if err != nil {
		return res, err
	}
	if res.Direct.MaxCalls > 0 {
		res.Ratio = float64(res.Relay.MaxCalls) / float64(res.Direct.MaxCalls)
	}
	if half := res.Relay.MaxCalls / 2; half > 0 && ctx.Err() == nil {
		res.HalfPeak = half
		if res.RelayAtHalf, err = viaRelay(ctx, half); err != nil {
			return res, err
		}
		if !cfg.SkipDirect {
			if res.DirectAtHalf, err = direct(ctx, half); err != nil {
				return res, err
			}
			res.AddedP50 = res.RelayAtHalf.P50 - res.DirectAtHalf.P50
			res.AddedP99 = res.RelayAtHalf.P99 - res.DirectAtHalf.P99
		}
	}
	return res, nil
}

// Measure runs one step of n calls through the relay (or directly, with
// viaRelay false), for tests and one-off figures.
func Measure(ctx context.Context, cfg Config, n int, viaRelay bool) (Step, error) {
	cfg.defaults()
	g, err := newGenerator(cfg)
	if err != nil {
		return Step{}, err
	}
	defer g.close()
	if !viaRelay {
		return g.step(ctx, n, nil)
	}
	r, err := relay.New(cfg.Relay)
	if err != nil {
		return Step{}, err
	}
	defer r.Close()
	return g.step(ctx, n, r)
}

func search(ctx context.Context, cfg Config, name string, measure func(context.Context, int) (Step, error)) (Path, error) {
	p := Path{Name: name}
	good, bad := 0, 0
	for n := cfg.Start; n <= cfg.Max && ctx.Err() == nil; n *= 2 {
		s, err := measure(ctx, n)
		if err != nil {
			return p, err
		}
		p.Steps = append(p.Steps, s)
		if !s.Pass {
			bad = n
			p.GeneratorBound = generatorBound(s)
			break
		}
		good = n
	}
	for i := 0; i < cfg.Refine && bad > 0 && bad-good > max(good/20, 10) && ctx.Err() == nil; i++ {
		n := (good + bad) / 2
		s, err := measure(ctx, n)
		if err != nil {
			return p, err
		}
		p.Steps = append(p.Steps, s)
		if s.Pass {
			good = n
		} else {
			bad = n
			p.GeneratorBound = generatorBound(s)
		}
	}
	p.MaxCalls = good
	return p, nil
}

// How far behind schedule the generator may fall in a passing step: it
// catches up late slots at once, so a short stall (the two cores are shared
// with the path it measures) only makes a burst.
const (
	maxLag     = 50 * time.Millisecond
	minOffered = 0.99
)

func generatorBound(s Step) bool { return s.Offered < minOffered || s.SendLagP99 > maxLag }
