package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/*/stat (100 on
// every Linux the project runs on).
const clockTicks = 100

// cpuWatch measures the CPU time of process groups (servers started by the
// harness each lead their own group, so Kamailio's forked workers count
// with it) and of this process (the load generators).
type cpuWatch struct {
	groups map[string]int // name → process group id; 0 means this process
}

type cpuSample struct {
	at      time.Time
	ticks   map[string]uint64
	machine uint64 // busy ticks of all CPUs, from /proc/stat
}

// otherName is the CPU used by processes outside the bench (other jobs on
// a shared machine): all CPUs' busy time minus the bench's processes.
const otherName = "other"

func newCPUWatch() *cpuWatch { return &cpuWatch{groups: map[string]int{"loadgen": 0}} }

func (w *cpuWatch) set(name string, pgid int) { w.groups[name] = pgid }
func (w *cpuWatch) drop(name string)          { delete(w.groups, name) }

func (w *cpuWatch) sample() cpuSample {
	s := cpuSample{at: time.Now(), ticks: map[string]uint64{}, machine: machineBusy()}
	byPgid := map[int]string{}
	for name, pg := range w.groups {
		if pg == 0 {
			if t, _, err := readStat("/proc/self/stat"); err == nil {
				s.ticks[name] = t
			}
			continue
		}
		byPgid[pg] = name
	}
	if len(byPgid) == 0 {
		return s
	}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		t, pg, err := readStat(p)
		if err != nil {
			continue
		}
		if name, ok := byPgid[pg]; ok {
			s.ticks[name] += t
		}
	}
	return s
}

// readStat returns utime+stime (ticks) and the process group of a
// /proc/PID/stat file.
func readStat(path string) (ticks uint64, pgrp int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%s: no comm", path)
	}
	f := bytes.Fields(b[i+1:])
	// After "(comm)": state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%s: short", path)
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, err
	}
	ut, err := strconv.ParseUint(string(f[11]), 10, 64)
	if err != nil {
		return 0, 0, err
	}
	st, err := strconv.ParseUint(string(f[12]), 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return ut + st, pg, nil
}

// machineBusy is the busy time of all CPUs (user, nice, system, irq,
// softirq, steal) in ticks.
func machineBusy() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0
		}
		busy += n
	}
	return busy
}

// cpuBetween is each group's CPU use between two samples, in cores (1.0 =
// one core busy all the time).
func cpuBetween(a, b cpuSample) map[string]float64 {
	wall := b.at.Sub(a.at).Seconds()
	out := map[string]float64{}
	if wall <= 0 {
		return out
	}
	for name, t := range b.ticks {
		t0, ok := a.ticks[name]
		if !ok || t < t0 {
			continue
		}
		out[name] = float64(t-t0) / clockTicks / wall
	}
	if a.machine > 0 && b.machine >= a.machine {
		other := float64(b.machine-a.machine) / clockTicks / wall
		for _, v := range out {
			other -= v
		}
		out[otherName] = max(0, other)
	}
	return out
}
