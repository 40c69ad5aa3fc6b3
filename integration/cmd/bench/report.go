package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/parleygw/parley/integration/loadgen"
)

// Targets (issue: "Parley ≥ 0.7× baseline; p99 added ≤ 5 ms at half of
// peak rate").
const (
	targetRatio     = 0.7
	targetAddedP99  = 5 * time.Millisecond
	cpuSaturatedOne = 0.85 // a single-threaded process at ≥ 85 % of a core is saturated
	noisyOther      = 0.25 // outside processes using more cores than this make a run suspect
)

// Report is everything report.json holds; report.md renders it.
type Report struct {
	Date        string   `json:"date"`
	Machine     Machine  `json:"machine"`
	Settings    Settings `json:"settings"`
	Rows        []*Row   `json:"rows"`
	Comparisons []*Cmp   `json:"comparisons"`
	Baseline    *Base    `json:"baseline_used,omitempty"`
	Stale       int64    `json:"stale_deliveries"`
	Foreign     int64    `json:"foreign_bodies"`
	TookSeconds float64  `json:"took_seconds"`
	LoadAvgEnd  string   `json:"loadavg_at_end"`
	MaxOtherCPU float64  `json:"max_other_cpu_cores"`
	Notes       []string `json:"notes"`

	started time.Time
}

// Settings are the knobs of this run.
type Settings struct {
	Quick           bool    `json:"quick"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	Window          int     `json:"closed_loop_window"`
	Conversations   int     `json:"conversations"`
	Batch           int     `json:"closed_loop_batch"`
	BodyBytes       int     `json:"body_bytes"`
	SIPTransport    string  `json:"sip_transport"`
	KamailioShmMB   int     `json:"kamailio_shm_mb"`
	QuietWaitBudget float64 `json:"quiet_wait_budget_s"`
	ProsodyLimits   string  `json:"prosody_limits"`
	KamailioConfig  string  `json:"kamailio_config"`
	LogLevels       string  `json:"log_levels"`
	TargetRatio     float64 `json:"target_throughput_ratio"`
	TargetAddedP99  float64 `json:"target_added_p99_ms"`
}

// Row is one path's measurements.
type Row struct {
	ID        string  `json:"id"`
	Title     string  `json:"title"`
	Hops      string  `json:"hops"`
	Kind      rowKind `json:"kind"`
	Store     string  `json:"store,omitempty"`
	StartedAt float64 `json:"started_at_s"`

	// Flattened figures (also in Peak/Half).
	PeakMsgs    float64 `json:"peak_msgs_per_s"`
	HalfRate    float64 `json:"half_rate_msgs_per_s"`
	HalfAchieve float64 `json:"half_achieved_msgs_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	Lost        int64   `json:"lost"`   // peak + half runs
	Failed      int64   `json:"failed"` // peak + half runs

	Peak      *loadgen.Result    `json:"peak,omitempty"`
	Half      *loadgen.Result    `json:"half,omitempty"`
	CPUPeak   map[string]float64 `json:"cpu_cores_at_peak,omitempty"`
	CPUHalf   map[string]float64 `json:"cpu_cores_at_half,omitempty"`
	LimitedBy string             `json:"limited_by,omitempty"`
	// CPUPerMsg is each process's CPU time per delivered message in the
	// peak run, in microseconds (less sensitive to a shared machine than
	// msg/s).
	CPUPerMsg map[string]float64 `json:"cpu_us_per_msg_at_peak,omitempty"`
	// QuietWaited is how long the bench waited for outside CPU load to drop
	// before this row's runs (seconds).
	QuietWaited float64 `json:"quiet_waited_s,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// Base is the baseline the comparisons use: the better of the runs at the
// start and at the end (highest peak; lowest p99), the harder bar.
type Base struct {
	PeakMsgs float64  `json:"peak_msgs_per_s"`
	PeakFrom string   `json:"peak_from"`
	P99ms    float64  `json:"p99_ms"`
	P99From  string   `json:"p99_from"`
	Runs     []string `json:"runs"`
}

// Cmp is one Parley row against the baseline.
type Cmp struct {
	Row             string  `json:"row"`
	Title           string  `json:"title"`
	PeakMsgs        float64 `json:"peak_msgs_per_s"`
	Ratio           float64 `json:"throughput_ratio"`
	RatioPass       bool    `json:"throughput_pass"`
	P99ms           float64 `json:"p99_ms"`
	AddedP99ms      float64 `json:"added_p99_ms"`
	LatencyPass     bool    `json:"latency_pass"`
	LossFree        bool    `json:"loss_free"`
	Verdict         string  `json:"verdict"` // PASS, MISS or ERROR
	Reason          string  `json:"reason,omitempty"`
	TargetRatio     float64 `json:"target_ratio"`
	TargetAddedP99m float64 `json:"target_added_p99_ms"`
}

func newReport(o options, m Machine, started time.Time) *Report {
	batch := max(1, o.window/10)
	return &Report{
		Date:    started.UTC().Format(time.RFC3339),
		Machine: m,
		Settings: Settings{
			Quick: o.quick, WarmupSeconds: o.warmup.Seconds(), DurationSeconds: o.duration.Seconds(),
			Window: o.window, Batch: batch, Conversations: o.conversations, BodyBytes: o.bodySize, SIPTransport: o.sipTransport,
			KamailioShmMB: o.kamailioShm, QuietWaitBudget: o.quietWait.Seconds(),
			ProsodyLimits:  "lifted: mod_limits not loaded (harness ProsodyOptions.Limits=false); Debian's default throttles c2s to 10 kb/s, about 50 chat messages/s",
			KamailioConfig: fmt.Sprintf("harness configuration (stateful tm proxy + registrar, children=2, tcp_children=2), debug=1 (no per-request log line), -m %d MB shared memory", o.kamailioShm),
			LogLevels:      "Prosody warn, Parley warn, Kamailio notice",
			TargetRatio:    targetRatio, TargetAddedP99: ms(targetAddedP99),
		},
		started: started,
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func (r *Report) finish(took time.Duration) {
	r.TookSeconds = round1(took.Seconds())
	r.LoadAvgEnd = loadAvg()
	for _, row := range r.Rows {
		r.MaxOtherCPU = max(r.MaxOtherCPU, math.Round(row.CPUPeak[otherName]*100)/100, math.Round(row.CPUHalf[otherName]*100)/100)
		if row.Peak != nil && row.Peak.Throughput > 0 && len(row.CPUPeak) > 0 {
			row.CPUPerMsg = map[string]float64{}
			for name, cores := range row.CPUPeak {
				if name != otherName {
					row.CPUPerMsg[name] = round1(cores * 1e6 / row.Peak.Throughput)
				}
			}
		}
		if row.Peak != nil {
			row.PeakMsgs = round1(row.Peak.Throughput)
			row.Lost += row.Peak.Lost
			row.Failed += row.Peak.Failed
		}
		if row.Half != nil {
			row.HalfRate = round1(row.Half.Rate)
			row.HalfAchieve = round1(row.Half.Throughput)
			row.P50ms, row.P90ms, row.P99ms, row.MaxMs = ms(row.Half.P50), ms(row.Half.P90), ms(row.Half.P99), ms(row.Half.Max)
			row.Lost += row.Half.Lost
			row.Failed += row.Half.Failed
		}
	}
	r.Baseline = r.pickBaseline()
	for _, row := range r.Rows {
		if row.Kind == kindParley {
			r.Comparisons = append(r.Comparisons, r.compare(row))
		}
	}
	r.Notes = r.notes()
}

func (r *Report) pickBaseline() *Base {
	var b *Base
	for _, row := range r.Rows {
		if row.Kind != kindBaseline || row.Error != "" || row.Half == nil || row.Half.Samples == 0 {
			continue
		}
		if b == nil {
			b = &Base{PeakMsgs: row.PeakMsgs, PeakFrom: row.ID, P99ms: row.P99ms, P99From: row.ID}
		}
		b.Runs = append(b.Runs, fmt.Sprintf("%s: %.0f msg/s, p99 %.2f ms", row.ID, row.PeakMsgs, row.P99ms))
		if row.PeakMsgs > b.PeakMsgs {
			b.PeakMsgs, b.PeakFrom = row.PeakMsgs, row.ID
		}
		if row.P99ms < b.P99ms {
			b.P99ms, b.P99From = row.P99ms, row.ID
		}
	}
	return b
}

func (r *Report) compare(row *Row) *Cmp {
	c := &Cmp{Row: row.ID, Title: row.Title, PeakMsgs: row.PeakMsgs, P99ms: row.P99ms,
		TargetRatio: targetRatio, TargetAddedP99m: ms(targetAddedP99)}
	switch {
	case row.Error != "":
		c.Verdict, c.Reason = "ERROR", firstLine(row.Error)
		return c
	case r.Baseline == nil:
		c.Verdict, c.Reason = "ERROR", "no baseline was measured"
		return c
	}
	c.Ratio = math.Round(row.PeakMsgs/r.Baseline.PeakMsgs*1000) / 1000
	c.RatioPass = c.Ratio >= targetRatio
	c.AddedP99ms = math.Round((row.P99ms-r.Baseline.P99ms)*1000) / 1000
	c.LatencyPass = c.AddedP99ms <= ms(targetAddedP99)
	c.LossFree = row.Lost == 0 && row.Failed == 0
	var why []string
	if !c.RatioPass {
		why = append(why, fmt.Sprintf("throughput %.2f× < %.1f×", c.Ratio, targetRatio))
	}
	if !c.LatencyPass {
		why = append(why, fmt.Sprintf("added p99 %.2f ms > %.0f ms", c.AddedP99ms, ms(targetAddedP99)))
	}
	if !c.LossFree {
		why = append(why, fmt.Sprintf("%d lost, %d failed", row.Lost, row.Failed))
	}
	c.Verdict = "PASS"
	if len(why) > 0 {
		c.Verdict, c.Reason = "MISS", strings.Join(why, "; ")
	}
	return c
}

// ErrorRows counts rows that could not be measured.
func (r *Report) ErrorRows() int {
	n := 0
	for _, row := range r.Rows {
		if row.Error != "" {
			n++
		}
	}
	return n
}

// limitNote names what bounded a closed-loop run, from CPU use.
func limitNote(cpu map[string]float64, nproc int) string {
	if len(cpu) == 0 {
		return ""
	}
	total := 0.0
	for _, v := range cpu {
		total += v
	}
	parts := []string{"CPU " + fmtCPU(cpu)}
	other := cpu[otherName]
	switch {
	case cpu["prosody"] >= cpuSaturatedOne:
		parts = append(parts, fmt.Sprintf("Prosody saturated (%.0f%% of its one Lua thread)", cpu["prosody"]*100))
	case cpu["kamailio"] >= 2*cpuSaturatedOne:
		parts = append(parts, "Kamailio saturated (2 UDP workers)")
	case total >= 0.85*float64(nproc) && other >= noisyOther:
		parts = append(parts, fmt.Sprintf("machine saturated (%.2f of %d cores busy, %.2f of them by processes outside the bench)", total, nproc, other))
	case total >= 0.85*float64(nproc):
		parts = append(parts, fmt.Sprintf("machine saturated (%.2f of %d cores busy)", total, nproc))
	default:
		parts = append(parts, "no process saturated: bounded by per-message latency × window")
	}
	return strings.Join(parts, "; ")
}

// fmtCPU lists processes by CPU use, busiest first ("prosody 0.97, …").
func fmtCPU(cpu map[string]float64) string {
	names := make([]string, 0, len(cpu))
	for n := range cpu {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return cpu[names[i]] > cpu[names[j]] })
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.2f", n, cpu[n])
	}
	return b.String()
}

func (r *Report) notes() []string {
	n := []string{
		"Peak: closed loop, a window of messages in flight end to end (sent, not yet delivered or failed), refilled in batches; deliveries per second over the measuring window after the warm-up. Offered load equals what the path sustains, so a loss-free peak run is the highest load the path sustains without loss.",
		"Latency: open loop, paced at half of that path's own peak; one-way latency from the send timestamp in the body (monotonic clock shared by sender and receiver, both in this process) to the receiver's reading of it; p50/p99 over the messages sent in the measuring window.",
		"Ratios use the better baseline of the runs at the start and at the end (highest peak, lowest p99): the harder bar for Parley.",
		"The baseline crosses Prosody twice (client→component, component→client); each Parley path crosses Prosody once plus Kamailio and Parley. All processes, load generators included, share the machine's cores, so a path's ceiling is also set by how much CPU the others take.",
		"Prosody runs its whole routing in one Lua thread (server_epoll): when it shows ~1.0 core it is the limit. Kamailio uses children=2 UDP workers (and tcp_children=2). Parley and the load generators are Go and use both cores.",
		"CPU figures are cores busy during the measuring window (1.00 = one core), per process group; 'loadgen' is this bench process (XMPP client, echo component, SIP UAs).",
	}
	n = append(n,
		fmt.Sprintf("Parley keeps each conversation's messages in order and hands them on one after another, so one conversation alone is bounded by Parley's per-message round trip; the compared rows spread the load over %d conversations (as many users would), and the 'one conversation' rows show the per-conversation ceiling (not compared).", r.Settings.Conversations),
		"A p99 over a few seconds is sensitive to one stall episode (a GC pause, the scheduler, a burst from another process): 1 % of 5 s is 50 ms worth of messages. Run with -timeline to get every latency sample with its send time and see whether slow messages cluster.",
		"Kamailio's and the SIP load generators' CPU counts against the Parley paths on this machine; in a deployment the SIP UAs are elsewhere. The SIP reference row shows what Kamailio and the SIP UAs cost without Parley.",
	)
	if r.Settings.Quick {
		n = append(n, "QUICK MODE: 1 s runs that check the bench itself; the figures are rough and not for comparison.")
	}
	return n
}

func (r *Report) write(dir string) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("report md: %w", err)
	}
	return nil
}

// Summary is a short console version of the verdicts.
func (r *Report) Summary() string {
	var b strings.Builder
	if r.Baseline != nil {
		fmt.Fprintf(&b, "baseline: %.0f msg/s, p99 %.2f ms at half peak\n", r.Baseline.PeakMsgs, r.Baseline.P99ms)
	} else {
		b.WriteString("baseline: not measured\n")
	}
	for _, c := range r.Comparisons {
		if c.Verdict == "ERROR" {
			fmt.Fprintf(&b, "%-22s ERROR  %s\n", c.Row, c.Reason)
			continue
		}
		fmt.Fprintf(&b, "%-22s %-4s   %.0f msg/s (%.2f×), p99 %.2f ms (added %+.2f ms) %s\n", c.Row, c.Verdict, c.PeakMsgs, c.Ratio, c.P99ms, c.AddedP99ms, c.Reason)
	}
	return b.String()
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	w("# Parley benchmark: chat throughput and latency\n\n")
	if r.Settings.Quick {
		w("> **Quick mode** (checks the bench itself): runs are too short for the figures to mean much.\n\n")
	}
	w("- Date: %s; took %.0f s\n", r.Date, r.TookSeconds)
	w("- Machine: %d cores (%s), %s, %s RAM; load average at start %s, at end %s\n", m.NProc, m.CPU, m.Kernel, m.MemTotal, m.LoadAvg, r.LoadAvgEnd)
	w("- Software: %s; %s; %s; %s\n", m.Go, m.Prosody, m.Kamailio, m.Redis)
	s := r.Settings
	w("- Each run: %.1f s warm-up + %.1f s measured; load spread over %d conversations (sender/recipient pairs) unless a row says otherwise; peak runs keep %d messages in flight (refilled in batches of %d); bodies of %d bytes; SIP over %s\n",
		s.WarmupSeconds, s.DurationSeconds, s.Conversations, s.Window, s.Batch, s.BodyBytes, strings.ToUpper(s.SIPTransport))
	w("- Prosody rate limits: %s\n", s.ProsodyLimits)
	w("- Kamailio: %s\n", s.KamailioConfig)
	w("- Logging: %s\n", s.LogLevels)
	waited := 0.0
	for _, row := range r.Rows {
		waited += row.QuietWaited
	}
	if s.QuietWaitBudget > 0 {
		w("- Before each run the bench waited while processes outside it kept more than %.2f cores busy (budget %.0f s in all; waited %.1f s)\n", noisyOther, s.QuietWaitBudget, waited)
	}
	w("\n")

	w("## Verdicts\n\n")
	w("Targets: Parley's peak ≥ %.1f× the baseline's; Parley's p99 at half of its peak no more than %.0f ms above the baseline's p99 at half of its peak; nothing lost.\n\n", targetRatio, ms(targetAddedP99))
	if r.Baseline != nil {
		w("Baseline used: %.0f msg/s (%s), p99 %.2f ms (%s). Runs: %s.\n\n", r.Baseline.PeakMsgs, r.Baseline.PeakFrom, r.Baseline.P99ms, r.Baseline.P99From, strings.Join(r.Baseline.Runs, "; "))
	} else {
		w("**No baseline could be measured**: no comparison is possible.\n\n")
	}
	w("| path | peak msg/s | × baseline (≥ %.1f) | p99 at ½ peak | added p99 (≤ %.0f ms) | lost / failed | verdict |\n", targetRatio, ms(targetAddedP99))
	w("|---|---:|---|---:|---|---:|---|\n")
	for _, c := range r.Comparisons {
		if c.Verdict == "ERROR" {
			w("| %s | – | – | – | – | – | **ERROR**: %s |\n", c.Title, mdEscape(c.Reason))
			continue
		}
		row := r.row(c.Row)
		verdict := "**" + c.Verdict + "**"
		if c.Reason != "" {
			verdict += ": " + mdEscape(c.Reason)
		}
		w("| %s | %.0f | %.2f× %s | %.2f ms | %+.2f ms %s | %d / %d | %s |\n",
			c.Title, c.PeakMsgs, c.Ratio, passMiss(c.RatioPass), c.P99ms, c.AddedP99ms, passMiss(c.LatencyPass), row.Lost, row.Failed, verdict)
	}

	w("\n## All measurements\n\n")
	w("| path | hops | peak msg/s (sent, lost, failed) | ½-peak rate offered / delivered | p50 | p90 | p99 | max | ½-peak lost, failed | others' CPU (peak, ½) |\n")
	w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		if row.Peak == nil {
			w("| %s | %s | **ERROR** | | | | | | | |\n", row.Title, row.Hops)
			continue
		}
		peak := fmt.Sprintf("%.0f (%d, %d, %d)", row.PeakMsgs, row.Peak.Sent, row.Peak.Lost, row.Peak.Failed)
		noise := fmt.Sprintf("%.2f, %.2f", row.CPUPeak[otherName], row.CPUHalf[otherName])
		if row.Half == nil {
			w("| %s | %s | %s | – | – | – | – | – | – | %s |\n", row.Title, row.Hops, peak, noise)
			continue
		}
		w("| %s | %s | %s | %.0f / %.0f | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %d, %d | %s |\n",
			row.Title, row.Hops, peak, row.HalfRate, row.HalfAchieve, row.P50ms, row.P90ms, row.P99ms, row.MaxMs, row.Half.Lost, row.Half.Failed, noise)
	}
	if r.MaxOtherCPU >= noisyOther {
		w("\n**The machine was shared**: processes outside the bench used up to %.2f cores during the runs (column \"others' CPU\"); figures from those runs understate what the paths can do, and ratios between rows measured under different outside load are unreliable.\n", r.MaxOtherCPU)
	}

	w("\n## CPU time per delivered message (peak runs, µs)\n\n")
	w("Less sensitive to other work on a shared machine than msg/s. On this machine every process shares the same %d cores, so a path whose processes together need T µs per message cannot exceed about %d×10⁶/T msg/s, and one whose single-threaded Prosody needs P µs cannot exceed 10⁶/P.\n\n", m.NProc, m.NProc)
	procs := []string{"prosody", "parley", "parley-component", "parley-sip", "redis", "kamailio", "loadgen"}
	w("| path | %s | total |\n|---|%s---:|\n", strings.Join(procs, " | "), strings.Repeat("---:|", len(procs)))
	for _, row := range r.Rows {
		if len(row.CPUPerMsg) == 0 {
			continue
		}
		w("| %s |", row.Title)
		total := 0.0
		for _, p := range procs {
			v, ok := row.CPUPerMsg[p]
			if !ok {
				w(" – |")
				continue
			}
			total += v
			w(" %.0f |", v)
		}
		w(" %.0f |\n", total)
	}

	w("\n## What limits each path\n\n")
	for _, row := range r.Rows {
		if row.LimitedBy == "" {
			continue
		}
		w("- **%s** (peak run): %s", row.Title, row.LimitedBy)
		if len(row.CPUHalf) > 0 {
			w(". At half peak: CPU %s", fmtCPU(row.CPUHalf))
		}
		w(".\n")
	}

	var errs []*Row
	for _, row := range r.Rows {
		if row.Error != "" {
			errs = append(errs, row)
		}
	}
	if len(errs) > 0 {
		w("\n## Errors\n\n")
		for _, row := range errs {
			w("### %s\n\n```\n%s\n```\n\n", row.Title, strings.TrimSpace(row.Error))
		}
	}
	var reasons []string
	for _, row := range r.Rows {
		for _, res := range []*loadgen.Result{row.Peak, row.Half} {
			if res == nil {
				continue
			}
			for k, v := range res.FailReasons {
				reasons = append(reasons, fmt.Sprintf("%s (%s run): %d × %s", row.ID, res.Mode, v, k))
			}
		}
	}
	if len(reasons) > 0 {
		sort.Strings(reasons)
		w("\n## Failure answers\n\n")
		for _, s := range reasons {
			w("- %s\n", s)
		}
	}
	if r.Stale > 0 || r.Foreign > 0 {
		w("\nDeliveries arriving after their run ended (not counted): %d; bodies not from the load generator: %d.\n", r.Stale, r.Foreign)
	}

	w("\n## Method and notes\n\n")
	for _, n := range r.Notes {
		w("- %s\n", n)
	}
	return b.String()
}

func (r *Report) row(id string) *Row {
	for _, row := range r.Rows {
		if row.ID == id {
			return row
		}
	}
	return &Row{}
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
