package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

func quick() Config {
	return Config{Step: 400 * time.Millisecond, Warmup: 200 * time.Millisecond}
}

// TestMeasure: a handful of calls pass on both paths with no loss; the
// relay's latency is measured, not zero.
func TestMeasure(t *testing.T) {
	for _, secure := range []bool{false, true} {
		for _, via := range []bool{false, true} {
			cfg := quick()
			cfg.Secure = secure
			s, err := Measure(context.Background(), cfg, 20, via)
			if errors.Is(err, ErrUnsupported) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("secure=%v relay=%v: %+v", secure, via, s)
			// 2 000 packets a second pass on any machine; the pass criteria
			// themselves (p99, schedule) are not asserted, since other tests
			// share the CPU.
			if s.Sent == 0 || s.Loss > 0.01 || s.P50 <= 0 || s.P99 < s.P50 {
				t.Fatalf("secure=%v relay=%v: %+v", secure, via, s)
			}
			if want := uint64(20 * 2 * 50 * 4 / 10); s.Sent < want*9/10 || s.Sent > want*11/10 {
				t.Fatalf("sent %d packets, schedule says about %d", s.Sent, want)
			}
		}
	}
}

// TestRunSmall exercises the search end to end on tiny steps.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cfg := quick()
	cfg.Start, cfg.Max, cfg.Refine = 50, 100, 1
	res, err := Run(context.Background(), cfg)
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if len(res.Direct.Steps) == 0 || len(res.Relay.Steps) == 0 || res.Relay.MaxCalls > 100 ||
		res.HalfPeak != res.Relay.MaxCalls/2 ||
		(res.Direct.MaxCalls > 0 && res.Ratio != float64(res.Relay.MaxCalls)/float64(res.Direct.MaxCalls)) {
		t.Fatalf("result %+v", res)
	}
	for _, p := range []Path{res.Direct, res.Relay} {
		for _, s := range p.Steps {
			if s.Pass != (s.Why == "") || (s.Pass && s.Calls > p.MaxCalls) {
				t.Fatalf("%s step %+v against max %d", p.Name, s, p.MaxCalls)
			}
		}
	}
}

// BenchmarkCalls is the full search (what `make bench` runs); -benchtime is
// ignored, each call count is measured for Config.Step.
func BenchmarkCalls(b *testing.B) {
	for _, secure := range []bool{false, true} {
		name := "plain"
		if secure {
			name = "sdes"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				res, err := Run(context.Background(), Config{Secure: secure})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(res.Direct.MaxCalls), "direct-calls")
				b.ReportMetric(float64(res.Relay.MaxCalls), "relay-calls")
				b.ReportMetric(res.Ratio, "ratio")
				b.ReportMetric(float64(res.AddedP50.Microseconds()), "added-p50-µs")
				b.ReportMetric(float64(res.AddedP99.Microseconds()), "added-p99-µs")
				for _, p := range []Path{res.Direct, res.Relay} {
					for _, s := range p.Steps {
						b.Logf("%s %5d calls: loss %.4f%% p50 %v p99 %v offered %.1f%% pass=%v %s", p.Name, s.Calls, 100*s.Loss, s.P50, s.P99, 100*s.Offered, s.Pass, s.Why)
					}
				}
				b.Logf("half peak %d: relay %+v direct %+v", res.HalfPeak, res.RelayAtHalf, res.DirectAtHalf)
			}
		})
	}
}
