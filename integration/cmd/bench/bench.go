package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/loadgen"
)

// Fixed names of the topology (all on 127.0.0.1, free ports).
const (
	xmppDomain   = "xmpp.test"
	sipDomain    = "sip.test"
	echoDomain   = "echo.xmpp.test"
	echoSecret   = "bench-echo-secret"
	parleySecret = "bench-parley-secret"
	alicePass    = "alice-bench"
)

type bench struct {
	o    options
	log  *slog.Logger
	logw io.Writer
	dir  string
	rep  *Report
	cpu  *cpuWatch
	cl   *cleanups

	rec      *loadgen.Recorder
	prosody  *harness.Prosody
	kam      *kamailio
	alice    *loadgen.XMPPClient
	carol    *loadgen.SIPReceiver
	toCarol  *loadgen.SIPSender // dave → carol-1..n
	toAlice  *loadgen.SIPSender // dave-1..n → alice
	toAlice1 *loadgen.SIPSender // dave-1 → alice
	parleyUp func() error       // nil, or reports a Parley process that died

	quietLeft time.Duration // what is left of o.quietWait
}

func (b *bench) measureAll(ctx context.Context) error {
	// Build first: compiling on 2 cores while measuring would skew it.
	b.log.Info("building parley")
	binDir := filepath.Join(b.dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	bin, buildErr := harness.Build(binDir)
	if buildErr != nil {
		b.log.Error("parley does not build: its rows will be errors", "err", buildReason(buildErr))
	}
	sipPort, err := harness.FindFreePort()
	if err != nil {
		return err
	}
	parleySIP := fmt.Sprintf("127.0.0.1:%d", sipPort)
	if err := b.startServers(ctx, parleySIP); err != nil {
		return err
	}
	n := b.o.conversations
	echoTo := b.alice.To(users("echo-", "@"+echoDomain, n)...)
	convs := fmt.Sprintf(", %d conversations", n)

	b.row(ctx, rowSpec{id: "baseline", kind: kindBaseline,
		title: "Baseline: XMPP → echo component → XMPP",
		hops:  "XMPP client → Prosody → echo component → Prosody → XMPP client" + convs}, echoTo)
	b.row(ctx, rowSpec{id: "sip-reference", kind: kindReference,
		title: "Reference: SIP → Kamailio → SIP (no Parley)",
		hops:  "SIP UA → Kamailio → SIP UA" + convs}, b.toCarol)

	xmppToSIP := b.alice.To(users("carol-", "@"+sipDomain, n)...)
	xmppToSIP1 := b.alice.To("carol-1@" + sipDomain)
	modes := []struct {
		store  string
		launch func(context.Context, string, string) error
	}{
		{"memory", b.launchParleyAll},
		{"redis", b.launchParleySplit},
	}
	for _, m := range modes {
		x2s := rowSpec{id: "xmpp-to-sip-" + m.store, kind: kindParley, store: m.store,
			title: "Parley XMPP → SIP (" + storeTitle(m.store) + ")",
			hops:  "XMPP client → Prosody → Parley → Kamailio → SIP UA" + convs}
		s2x := rowSpec{id: "sip-to-xmpp-" + m.store, kind: kindParley, store: m.store,
			title: "Parley SIP → XMPP (" + storeTitle(m.store) + ")",
			hops:  "SIP UA → Kamailio → Parley → Prosody → XMPP client" + convs}
		x2s1 := rowSpec{id: "xmpp-to-sip-" + m.store + "-1conv", kind: kindSingle, store: m.store, peakOnly: true,
			title: "Parley XMPP → SIP (" + storeTitle(m.store) + "), one conversation",
			hops:  "as above, every message alice → carol-1 (delivered in order, one after another)"}
		s2x1 := rowSpec{id: "sip-to-xmpp-" + m.store + "-1conv", kind: kindSingle, store: m.store, peakOnly: true,
			title: "Parley SIP → XMPP (" + storeTitle(m.store) + "), one conversation",
			hops:  "as above, every message dave-1 → alice (delivered in order, one after another)"}
		if ctx.Err() != nil {
			break
		}
		if buildErr != nil {
			b.failRows("parley does not build: "+buildReason(buildErr)+"\n\n"+tailString(buildErr.Error(), 1500), x2s, s2x, x2s1, s2x1)
			continue
		}
		mark := b.cl.mark()
		if err := m.launch(ctx, bin, parleySIP); err != nil {
			b.log.Error("parley did not start", "store", m.store, "err", firstLine(err.Error()))
			b.failRows("parley did not start: "+tailString(err.Error(), 1500), x2s, s2x, x2s1, s2x1)
			b.cl.runFrom(mark)
			continue
		}
		b.row(ctx, x2s, xmppToSIP)
		b.row(ctx, s2x, b.toAlice)
		b.row(ctx, x2s1, xmppToSIP1)
		b.row(ctx, s2x1, b.toAlice1)
		b.cl.runFrom(mark)
		b.parleyUp = nil
	}

	if ctx.Err() == nil {
		b.row(ctx, rowSpec{id: "baseline-end", kind: kindBaseline,
			title: "Baseline again, at the end (drift check)",
			hops:  "XMPP client → Prosody → echo component → Prosody → XMPP client" + convs}, echoTo)
	}
	b.rep.Stale = b.rec.Stale()
	b.rep.Foreign = b.rec.Foreign()
	return nil
}

// buildReason is the first compiler error of a failed build, or the
// error's first line.
func buildReason(err error) string {
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.Contains(l, ".go:") {
			return strings.TrimSpace(l)
		}
	}
	return firstLine(err.Error())
}

// users is prefix+i+suffix for i in 1..n.
func users(prefix, suffix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d%s", prefix, i+1, suffix)
	}
	return out
}

func storeTitle(store string) string {
	if store == "redis" {
		return "split roles, Redis"
	}
	return "parley all, memory"
}

func (b *bench) startServers(ctx context.Context, parleySIP string) error {
	b.log.Info("starting Prosody and Kamailio")
	p, err := harness.LaunchProsody(filepath.Join(b.dir, "prosody"), b.logw, harness.ProsodyOptions{
		Domain:     xmppDomain,
		Components: map[string]string{echoDomain: echoSecret, sipDomain: parleySecret},
		Users:      map[string]string{"alice": alicePass},
		Limits:     false, // lifts Debian's c2s rate limit (mod_limits not loaded)
		LogLevel:   "warn",
	})
	if err != nil {
		return err
	}
	b.prosody = p
	b.cl.push("prosody", p.Stop)
	b.cpu.set("prosody", p.Proc.PID())

	transport := strings.ToLower(b.o.sipTransport)
	k, err := launchKamailio(filepath.Join(b.dir, "kamailio"), b.logw, harness.KamailioOptions{
		SIPDomain:       sipDomain,
		XMPPDomains:     []string{xmppDomain},
		ParleyAddr:      parleySIP,
		ParleyTransport: transport,
		Debug:           1, // notice: no per-request log lines (the harness logs every request at info)
	}, b.o.kamailioShm)
	if err != nil {
		return err
	}
	b.kam = k
	b.cl.push("kamailio", k.stop)
	b.cpu.set("kamailio", k.proc.PID())

	b.rec = loadgen.NewRecorder(loadgen.NewClock())
	echo, err := loadgen.StartEcho(ctx, loadgen.EchoConfig{Addr: p.ComponentAddr, Domain: echoDomain, Secret: echoSecret, Log: b.log})
	if err != nil {
		return err
	}
	b.cl.push("echo component", echo.Close)
	b.alice, err = loadgen.DialXMPP(ctx, loadgen.XMPPConfig{Addr: p.C2SAddr, Domain: xmppDomain, User: "alice", Password: alicePass, Recorder: b.rec, Log: b.log})
	if err != nil {
		return err
	}
	b.cl.push("xmpp client", b.alice.Close)

	n := b.o.conversations
	b.carol, err = loadgen.StartSIPReceiver(loadgen.SIPReceiverConfig{Users: users("carol-", "", n), Domain: sipDomain, Registrar: k.addr, Transport: transport, Recorder: b.rec, Log: b.log})
	if err != nil {
		return err
	}
	b.cl.push("sip receiver", b.carol.Close)
	if err := b.carol.Register(ctx, time.Hour); err != nil {
		return err
	}
	for _, s := range []struct {
		from, to []string
		dst      **loadgen.SIPSender
	}{
		{[]string{"sip:dave@" + sipDomain}, users("sip:carol-", "@"+sipDomain, n), &b.toCarol},
		{users("sip:dave-", "@"+sipDomain, n), []string{"sip:alice@" + xmppDomain}, &b.toAlice},
		{[]string{"sip:dave-1@" + sipDomain}, []string{"sip:alice@" + xmppDomain}, &b.toAlice1},
	} {
		snd, err := loadgen.NewSIPSender(loadgen.SIPSenderConfig{
			From: s.from, To: s.to, Proxy: k.addr, Transport: transport,
			MaxInFlight: 4 * b.o.window, Recorder: b.rec, Log: b.log,
		})
		if err != nil {
			return err
		}
		*s.dst = snd
		b.cl.push("sip sender", func() error { return snd.Close(2 * time.Second) })
	}
	return nil
}

func (b *bench) parleyOptions(bin, role, parleySIP string) (harness.ParleyOptions, error) {
	metrics, err := harness.FindFreePort()
	if err != nil {
		return harness.ParleyOptions{}, err
	}
	return harness.ParleyOptions{
		Bin: bin, Role: role,
		ComponentServer: b.prosody.ComponentAddr, Secret: parleySecret,
		ComponentDomains: []string{sipDomain},
		SIPListen:        parleySIP, SIPDomains: []string{xmppDomain},
		OutboundProxy: b.kam.addr, Trusted: []string{"127.0.0.1"},
		MetricsListen: fmt.Sprintf("127.0.0.1:%d", metrics),
		LogLevel:      "warn",
	}, nil
}

func (b *bench) startParley(ctx context.Context, name string, o harness.ParleyOptions) (*harness.Parley, error) {
	o.Name = name
	b.log.Info("starting parley", "name", name, "role", o.Role)
	p, err := harness.LaunchParley(filepath.Join(b.dir, "run-"+name), b.logw, o)
	if err != nil {
		return nil, err
	}
	b.cl.push(name, func() error { return ignoreSignalExit(p.Proc.Stop(10 * time.Second)) })
	b.cpu.set(name, p.Proc.PID())
	b.cl.push("cpu watch "+name, func() error { b.cpu.drop(name); return nil })
	return p, nil
}

func (b *bench) launchParleyAll(ctx context.Context, bin, parleySIP string) error {
	o, err := b.parleyOptions(bin, "all", parleySIP)
	if err != nil {
		return err
	}
	p, err := b.startParley(ctx, "parley", o)
	if err != nil {
		return err
	}
	b.parleyUp = exitedCheck(p)
	return nil
}

func (b *bench) launchParleySplit(ctx context.Context, bin, parleySIP string) error {
	r, err := launchRedis(filepath.Join(b.dir, "redis"))
	if err != nil {
		return err
	}
	b.cl.push("redis", func() error { return ignoreSignalExit(r.Proc.Stop(5 * time.Second)) })
	b.cpu.set("redis", r.Proc.PID())
	b.cl.push("cpu watch redis", func() error { b.cpu.drop("redis"); return nil })

	var procs []*harness.Parley
	for _, role := range []string{"component", "sip"} {
		o, err := b.parleyOptions(bin, role, parleySIP)
		if err != nil {
			return err
		}
		o.RedisURL = r.URL()
		o.Instance = "bench-" + role
		p, err := b.startParley(ctx, "parley-"+role, o)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	checks := []func() error{exitedCheck(procs[0]), exitedCheck(procs[1])}
	b.parleyUp = func() error {
		var errs []error
		for _, c := range checks {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	return nil
}

func exitedCheck(p *harness.Parley) func() error {
	return func() error {
		if p.Proc.Exited() {
			return fmt.Errorf("parley %s exited during the run:\n%s", p.Opts.Name, tailString(p.Proc.Output(), 1500))
		}
		return nil
	}
}

type rowKind string

const (
	kindBaseline  rowKind = "baseline"
	kindReference rowKind = "reference"
	kindParley    rowKind = "parley"
	// kindSingle is Parley with every message in one conversation:
	// informational, not compared (Parley delivers one conversation's
	// messages in order, one after another).
	kindSingle rowKind = "parley-one-conversation"
)

type rowSpec struct {
	id, title, hops, store string
	kind                   rowKind
	peakOnly               bool // no latency run
}

func (s rowSpec) newRow() *Row {
	return &Row{ID: s.id, Title: s.title, Hops: s.hops, Kind: s.kind, Store: s.store}
}

func (b *bench) failRows(reason string, specs ...rowSpec) {
	for _, s := range specs {
		r := s.newRow()
		r.Error = reason
		b.rep.Rows = append(b.rep.Rows, r)
	}
}

// row measures one path: closed loop for the peak, then paced at half of
// it for latency.
func (b *bench) row(ctx context.Context, spec rowSpec, s loadgen.Sender) {
	r := spec.newRow()
	r.StartedAt = time.Since(b.rep.started).Round(time.Millisecond).Seconds()
	b.rep.Rows = append(b.rep.Rows, r)
	log := b.log.With("row", spec.id)
	defer func() {
		if b.parleyUp != nil && (spec.kind == kindParley || spec.kind == kindSingle) {
			if err := b.parleyUp(); err != nil {
				r.Error = joinErr(r.Error, err.Error())
			}
		}
		if r.Error != "" {
			log.Error("row failed", "err", firstLine(r.Error))
		}
	}()

	base := loadgen.RunConfig{Warmup: b.o.warmup, Duration: b.o.duration, BodySize: b.o.bodySize, Drain: b.o.drain}
	peakCfg := base
	peakCfg.Window = b.o.window
	log.Info("peak run (closed loop)", "window", peakCfg.Window, "for", b.o.warmup+b.o.duration)
	r.QuietWaited += b.waitQuiet(ctx)
	peak, cpu, err := b.runOnce(ctx, s, peakCfg)
	r.Peak, r.CPUPeak = &peak, cpu
	r.LimitedBy = limitNote(cpu, b.rep.Machine.NProc)
	if spec.kind == kindSingle {
		r.LimitedBy += "; one conversation: Parley hands its messages on one after another, so its per-message round trip sets the pace"
	}
	log.Info("peak", "msg/s", round1(peak.Throughput), "sent", peak.Sent, "lost", peak.Lost, "failed", peak.Failed, "cpu", fmtCPU(cpu))
	if err != nil {
		r.Error = "peak run: " + err.Error()
		return
	}
	if peak.Throughput <= 0 {
		r.Error = fmt.Sprintf("peak run: nothing delivered (sent %d, failed %d %v, lost %d)", peak.Sent, peak.Failed, peak.FailReasons, peak.Lost)
		return
	}
	sleepCtx(ctx, b.o.settle)
	if spec.peakOnly {
		return
	}

	halfCfg := base
	halfCfg.Rate = peak.Throughput / 2
	halfCfg.KeepSamples = b.o.timeline
	log.Info("latency run (paced at half of peak)", "rate", round1(halfCfg.Rate))
	r.QuietWaited += b.waitQuiet(ctx)
	half, cpu, err := b.runOnce(ctx, s, halfCfg)
	r.Half, r.CPUHalf = &half, cpu
	if b.o.timeline {
		if err := writeTimeline(filepath.Join(b.o.out, spec.id+"-latency.csv"), half.Timeline); err != nil {
			log.Warn("timeline", "err", err)
		}
		half.Timeline = nil
	}
	log.Info("half", "p50", half.P50, "p99", half.P99, "lost", half.Lost, "failed", half.Failed)
	if err != nil {
		r.Error = "latency run: " + err.Error()
	}
	sleepCtx(ctx, b.o.settle)
}

// waitQuiet waits while processes outside the bench keep more than
// noisyOther cores busy, within what is left of the -quiet-wait budget. It
// returns the seconds waited. It never judges results, only the machine
// before a run, the same for every path.
func (b *bench) waitQuiet(ctx context.Context) float64 {
	if b.quietLeft <= 0 {
		return 0
	}
	start := time.Now()
	const step = 500 * time.Millisecond
	for b.quietLeft > 0 && ctx.Err() == nil {
		a := b.cpu.sample()
		sleepCtx(ctx, step)
		other := cpuBetween(a, b.cpu.sample())[otherName]
		if other < noisyOther {
			break
		}
		b.quietLeft -= step
		if b.quietLeft <= 0 {
			b.log.Warn("machine still busy with other work; measuring anyway", "other_cores", round1(other))
		}
	}
	waited := time.Since(start)
	if waited > 2*step {
		b.log.Info("waited for a quieter machine", "waited", waited.Round(time.Millisecond))
	}
	return round1(waited.Seconds())
}

// writeTimeline writes "sent_ms,latency_ms" lines.
func writeTimeline(path string, tl [][2]int64) error {
	var sb strings.Builder
	sb.WriteString("sent_ms,latency_ms\n")
	for _, s := range tl {
		fmt.Fprintf(&sb, "%.3f,%.3f\n", float64(s[0])/1e6, float64(s[1])/1e6)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// runOnce runs one measurement and the CPU use of every process over its
// measuring window.
func (b *bench) runOnce(ctx context.Context, s loadgen.Sender, cfg loadgen.RunConfig) (loadgen.Result, map[string]float64, error) {
	done := make(chan struct{})
	cpuc := make(chan map[string]float64, 1)
	go func() {
		if !sleepUntil(done, cfg.Warmup) {
			cpuc <- nil
			return
		}
		a := b.cpu.sample()
		sleepUntil(done, cfg.Duration)
		cpuc <- cpuBetween(a, b.cpu.sample())
	}()
	res, err := loadgen.Run(ctx, b.rec, s, cfg)
	close(done)
	return res, <-cpuc, err
}

// sleepUntil sleeps d unless done closes first; it reports whether it slept
// the whole time.
func sleepUntil(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
