package child

import (
	"os"
	"runtime"
	"time"

	"echobench/internal/procstat"
	"echobench/server"
)

// selfAccount is the echoserver's accounting of its own process tree, for its snapshots. One
// procstat.Sampler serves every reader (the signal loop, the stats port), so its clamp of CPU to
// never shrink (procstat's keepCumulative) holds across all of them; it is safe to share.
type selfAccount struct {
	sampler *procstat.Sampler
	pid     int
	started time.Time
}

func newSelfAccount() *selfAccount {
	pid := os.Getpid()
	return &selfAccount{sampler: procstat.NewSampler(pid), pid: pid, started: time.Now()}
}

// snapshot returns srv's counters with this process's goroutines and the tree's use so far.
// Reading the tree costs one /proc/PID/stat per process in it (one file for most models, one per
// connection for the process model), paid in the server's own CPU: that is why the stats are
// read when asked for, never on a timer.
func (a *selfAccount) snapshot(srv server.Server) Snapshot {
	s := Snapshot{Stats: srv.Stats()}
	s.Goroutines = runtime.NumGoroutine()
	t, err := a.sampler.Sample(false)
	if err != nil {
		return s // the stats line still carries the counters; Process stays nil
	}
	s.Process = &Usage{
		PID: a.pid, Started: a.started, Time: t.Time,
		UserS: t.User.Seconds(), SysS: t.Sys.Seconds(),
		RSSBytes: t.RSSBytes, RootHWMBytes: a.sampler.Peaks().RootHWMBytes,
		Threads: t.Threads, Processes: t.Processes,
	}
	return s
}
