//go:build benchexplore

package loadgen_test

import (
	"testing"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/loadgen"
)

func TestExploreWindow(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{
		Components: map[string]string{"echo.xmpp.test": "s"},
		Users:      map[string]string{"alice": "a"},
		LogLevel:   "warn",
	})
	ctx := t.Context()
	echo, err := loadgen.StartEcho(ctx, loadgen.EchoConfig{Addr: p.ComponentAddr, Domain: "echo.xmpp.test", Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	rec := loadgen.NewRecorder(loadgen.NewClock())
	c, err := loadgen.DialXMPP(ctx, loadgen.XMPPConfig{Addr: p.C2SAddr, Domain: "xmpp.test", User: "alice", Password: "a", Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.To("echo@echo.xmpp.test")
	for _, w := range []int{10, 30, 100, 300, 100, 30} {
		res, err := loadgen.Run(ctx, rec, s, loadgen.RunConfig{Warmup: 500 * time.Millisecond, Duration: 2 * time.Second, Window: w})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("window %d: %.0f msg/s p50 %v", w, res.Throughput, res.P50)
	}
	for _, rate := range []float64{1000, 3000, 5000} {
		res, err := loadgen.Run(ctx, rec, s, loadgen.RunConfig{Warmup: 500 * time.Millisecond, Duration: 2 * time.Second, Rate: rate})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rate %.0f: %.0f msg/s p50 %v p99 %v max %v lag %v", rate, res.Throughput, res.P50, res.P99, res.Max, res.SendLag)
	}
}
