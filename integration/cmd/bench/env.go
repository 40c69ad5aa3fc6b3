package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine is what the figures were measured on.
type Machine struct {
	NProc    int    `json:"nproc"`
	CPU      string `json:"cpu"`
	Kernel   string `json:"kernel"`
	MemTotal string `json:"mem_total"`
	Go       string `json:"go"`
	Prosody  string `json:"prosody"`
	Kamailio string `json:"kamailio"`
	Redis    string `json:"redis"`
	LoadAvg  string `json:"loadavg_at_start"`
}

func machineFacts(ctx context.Context) Machine {
	m := Machine{NProc: runtime.NumCPU(), Go: runtime.Version()}
	if out := command(ctx, "nproc"); out != "" {
		m.NProc = atoiOr(out, m.NProc)
	}
	m.CPU = cpuModel()
	m.Kernel = command(ctx, "uname", "-sr")
	m.MemTotal = meminfo("MemTotal")
	if f := strings.Fields(command(ctx, "go", "version")); len(f) >= 3 {
		m.Go = f[2] // "go version go1.26.8 linux/amd64"
	}
	// Prosody has no --version; prosodyctl about prints "Prosody 0.12.3" first.
	m.Prosody = firstLine(command(ctx, "prosodyctl", "about"))
	// "version: kamailio 5.6.3 (x86_64/linux)"
	m.Kamailio = strings.TrimPrefix(firstLine(command(ctx, "kamailio", "-v")), "version: ")
	if f := strings.Fields(m.Kamailio); len(f) >= 2 {
		m.Kamailio = "Kamailio " + f[1]
	}
	// "Redis server v=7.0.15 sha=… malloc=…": keep the version.
	if f := strings.Fields(command(ctx, "redis-server", "--version")); len(f) >= 3 {
		m.Redis = "Redis " + strings.TrimPrefix(f[2], "v=")
	}
	m.LoadAvg = loadAvg()
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func command(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func meminfo(key string) string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func atoiOr(s string, def int) int {
	n := 0
	for _, c := range strings.TrimSpace(s) {
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int(c-'0')
	}
	if n == 0 {
		return def
	}
	return n
}
