package loadgen_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/loadgen"
)

func need(t *testing.T, bins ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real servers")
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
}

// run checks that a short closed-loop and a paced run deliver everything.
func run(t *testing.T, rec *loadgen.Recorder, s loadgen.Sender) {
	t.Helper()
	ctx := t.Context()
	res, err := loadgen.Run(ctx, rec, s, loadgen.RunConfig{Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond, Window: 50})
	if err != nil {
		t.Fatalf("closed loop: %v (%+v)", err, res)
	}
	t.Logf("closed loop: %.0f msg/s, sent %d, lost %d, p50 %v", res.Throughput, res.Sent, res.Lost, res.P50)
	if res.Throughput <= 0 || res.Lost != 0 || res.Failed != 0 || res.Received != res.Sent {
		t.Errorf("closed loop: %+v", res)
	}
	res, err = loadgen.Run(ctx, rec, s, loadgen.RunConfig{Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond, Rate: 200})
	if err != nil {
		t.Fatalf("paced: %v (%+v)", err, res)
	}
	t.Logf("paced 200/s: %.0f msg/s, p50 %v p99 %v, lost %d", res.Throughput, res.P50, res.P99, res.Lost)
	if res.Samples < 50 || res.Lost != 0 || res.Failed != 0 || res.P50 <= 0 {
		t.Errorf("paced: %+v", res)
	}
}

func TestXMPPEcho(t *testing.T) {
	need(t, "prosody")
	const secret = "echo-secret"
	p := harness.StartProsody(t, harness.ProsodyOptions{
		Components: map[string]string{"echo.xmpp.test": secret},
		Users:      map[string]string{"alice": "alice-pw"},
		LogLevel:   "warn",
	})
	ctx := t.Context()
	echo, err := loadgen.StartEcho(ctx, loadgen.EchoConfig{Addr: p.ComponentAddr, Domain: "echo.xmpp.test", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	if _, err := loadgen.StartEcho(ctx, loadgen.EchoConfig{Addr: p.ComponentAddr, Domain: "echo.xmpp.test", Secret: "wrong"}); err == nil {
		t.Error("wrong secret accepted")
	}
	rec := loadgen.NewRecorder(loadgen.NewClock())
	c, err := loadgen.DialXMPP(ctx, loadgen.XMPPConfig{Addr: p.C2SAddr, Domain: "xmpp.test", User: "alice", Password: "alice-pw", Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := loadgen.DialXMPP(ctx, loadgen.XMPPConfig{Addr: p.C2SAddr, Domain: "xmpp.test", User: "alice", Password: "nope", Recorder: rec}); err == nil {
		t.Error("wrong password accepted")
	}
	t.Logf("bound %s", c.JID())
	run(t, rec, c.To("echo@echo.xmpp.test", "echo2@echo.xmpp.test"))

	// A message to a domain nobody serves comes back as an error, recorded
	// as a failure of that message.
	res, err := loadgen.Run(ctx, rec, c.To("x@nowhere.test"), loadgen.RunConfig{Warmup: 10 * time.Millisecond, Duration: 100 * time.Millisecond, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed == 0 || res.Received != 0 || res.Lost != 0 {
		t.Errorf("errors: %+v", res)
	}
	t.Logf("fail reasons: %v", res.FailReasons)
}

func TestSIPThroughKamailio(t *testing.T) {
	need(t, "kamailio")
	rec := loadgen.NewRecorder(loadgen.NewClock())
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			// A Kamailio each: the harness's runs with 64 MB of shared
			// memory, and tm keeps every finished transaction for 5 s.
			k := harness.StartKamailio(t, harness.KamailioOptions{Debug: 1})
			r, err := loadgen.StartSIPReceiver(loadgen.SIPReceiverConfig{Users: []string{"carol-" + tp, "erin-" + tp}, Domain: "sip.test", Registrar: k.Addr, Transport: tp, Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Register(t.Context(), time.Hour); err != nil {
				t.Fatal(err)
			}
			s, err := loadgen.NewSIPSender(loadgen.SIPSenderConfig{From: []string{"sip:dave@sip.test"}, To: []string{"sip:carol-" + tp + "@sip.test", "sip:erin-" + tp + "@sip.test"}, Proxy: k.Addr, Transport: tp, Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(time.Second)
			run(t, rec, s)

			// Unregistered user: Kamailio's 404 is a failure.
			s2, err := loadgen.NewSIPSender(loadgen.SIPSenderConfig{From: []string{"sip:dave@sip.test"}, To: []string{"sip:nobody@sip.test"}, Proxy: k.Addr, Transport: tp, Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close(time.Second)
			res, _ := loadgen.Run(t.Context(), rec, s2, loadgen.RunConfig{Warmup: 10 * time.Millisecond, Duration: 100 * time.Millisecond, Rate: 100})
			if res.Failed == 0 || res.Received != 0 {
				t.Errorf("404s: %+v", res)
			}
			t.Logf("fail reasons: %v", res.FailReasons)
		})
	}
}
