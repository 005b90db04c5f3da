package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// cpuUse is CPU time spent, in seconds, by each side of a measurement: the
// source cluster's server processes, the sink cluster's, and the client
// programs the bench ran (psql, pg_dump, pg_restore, pg_recvlogical,
// sluice). On 2 cores every method of the full copy is CPU-bound, so these
// say where a method's time goes and how much work it does in all.
type cpuUse struct {
	Source float64 `json:"source"`
	Sink   float64 `json:"sink"`
	Client float64 `json:"clients"`
}

func (u cpuUse) total() float64 { return u.Source + u.Sink + u.Client }

// cpuMark is a reading of the counters behind cpuUse.
type cpuMark struct {
	source, sink, client float64
	ok                   bool
}

// cpuNow reads the counters: for each cluster, its postmaster's own time,
// the time of its exited children (backends and workers it has reaped) and
// of those still running; for the clients, this process's reaped children.
// ok is false where /proc cannot be read (not Linux): no figures then.
func (b *bench) cpuNow() cpuMark {
	src, ok1 := clusterCPU(b.src)
	dst, ok2 := clusterCPU(b.dst)
	var ru syscall.Rusage
	err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	client := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return cpuMark{source: src, sink: dst, client: client, ok: ok1 && ok2 && err == nil}
}

// since is the CPU used between m0 and m.
func (m cpuMark) since(m0 cpuMark) *cpuUse {
	if !m.ok || !m0.ok {
		return nil
	}
	return &cpuUse{Source: m.source - m0.source, Sink: m.sink - m0.sink, Client: m.client - m0.client}
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times
// (100 on every Linux platform Go supports).
const clockTicks = 100

// clusterCPU sums the CPU seconds of a cluster's postmaster and children.
func clusterCPU(c *pgtest.Cluster) (float64, bool) {
	if c == nil {
		return 0, false
	}
	data, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	pm, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		return 0, false
	}
	f, ok := procStat(pm)
	if !ok {
		return 0, false
	}
	ticks := f.utime + f.stime + f.cutime + f.cstime
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		if s, ok := procStat(pid); ok && s.ppid == pm {
			ticks += s.utime + s.stime
		}
	}
	return float64(ticks) / clockTicks, true
}

type statFields struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// procStat reads the fields of /proc/<pid>/stat the bench uses.
func procStat(pid int) (statFields, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return statFields{}, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return statFields{}, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return statFields{}, false
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k-3], 10, 64); return n }
	return statFields{ppid: int(num(4)), utime: num(14), stime: num(15), cutime: num(16), cstime: num(17)}, true
}
