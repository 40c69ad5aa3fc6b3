package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuick runs the whole bench in quick mode and checks that the bench
// code works: both reports exist and hold every row with non-zero figures.
// It deliberately asserts nothing about speed: timings belong in the
// report only.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody, Kamailio, Redis and Parley")
	}
	for _, bin := range []string{"prosody", "prosodyctl", "kamailio", "redis-server"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	out := t.TempDir()
	log := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if _, err := run(t.Context(), options{out: out, quick: true}, log); err != nil {
		t.Fatal(err)
	}

	js, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if !rep.Settings.Quick || rep.Machine.NProc == 0 || rep.Date == "" {
		t.Errorf("report header incomplete: %+v %+v", rep.Settings, rep.Machine)
	}

	rows := map[string]*Row{}
	for _, r := range rep.Rows {
		rows[r.ID] = r
	}
	for _, id := range []string{"baseline", "sip-reference", "xmpp-to-sip-memory", "sip-to-xmpp-memory", "xmpp-to-sip-redis", "sip-to-xmpp-redis", "baseline-end",
		"xmpp-to-sip-memory-1conv", "sip-to-xmpp-memory-1conv", "xmpp-to-sip-redis-1conv", "sip-to-xmpp-redis-1conv"} {
		r := rows[id]
		if r == nil {
			t.Errorf("report.json: no row %s", id)
			continue
		}
		if r.Error != "" {
			t.Errorf("row %s: error: %s", id, r.Error)
			continue
		}
		if strings.HasSuffix(id, "-1conv") { // peak only
			if r.PeakMsgs <= 0 || r.Peak.Sent == 0 || len(r.CPUPeak) == 0 {
				t.Errorf("row %s: zero figures: peak %v", id, r.PeakMsgs)
			}
			if !strings.Contains(string(md), r.Title) {
				t.Errorf("report.md: no row %q", r.Title)
			}
			continue
		}
		if r.PeakMsgs <= 0 || r.HalfRate <= 0 || r.HalfAchieve <= 0 || r.P50ms <= 0 || r.P99ms <= 0 || r.MaxMs <= 0 || r.Peak.Sent == 0 || r.Half.Samples == 0 {
			t.Errorf("row %s: zero figures: peak %v, half rate %v delivered %v, p50 %v p99 %v max %v", id, r.PeakMsgs, r.HalfRate, r.HalfAchieve, r.P50ms, r.P99ms, r.MaxMs)
		}
		if len(r.CPUPeak) == 0 {
			t.Errorf("row %s: no CPU figures", id)
		}
		if !strings.Contains(string(md), r.Title) {
			t.Errorf("report.md: no row %q", r.Title)
		}
	}
	if len(rep.Comparisons) != 4 {
		t.Errorf("%d comparisons, want 4", len(rep.Comparisons))
	}
	for _, c := range rep.Comparisons {
		if c.Verdict != "PASS" && c.Verdict != "MISS" {
			t.Errorf("comparison %s: verdict %q (%s)", c.Row, c.Verdict, c.Reason)
			continue
		}
		if c.Ratio <= 0 || c.PeakMsgs <= 0 || c.P99ms <= 0 {
			t.Errorf("comparison %s: zero figures: %+v", c.Row, c)
		}
		if !strings.Contains(string(md), c.Title) {
			t.Errorf("report.md: no verdict row %q", c.Title)
		}
	}
	if rep.Baseline == nil || rep.Baseline.PeakMsgs <= 0 {
		t.Errorf("no baseline used: %+v", rep.Baseline)
	}
	if t.Failed() {
		t.Logf("report.md:\n%s", md)
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
