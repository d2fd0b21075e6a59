package measure

import (
	"sync"
	"time"

	"echobench/internal/procstat"
	"echobench/report"
)

// Watch accounts a server over a load that other processes drive (-procs' agents): it keeps the
// same series as Run does for its own load, from WatchServer until Finish, so a merged report
// carries the server's cost the way a single run's does.
type Watch struct {
	source serverSource
	pid    int
	acct   *accountant

	once   sync.Once
	points []point
}

// WatchServer starts sampling the server: its process tree under pid if pid > 0 (this host),
// else its stats port at statsAddr (echoserver -stats-addr).
func WatchServer(pid int, statsAddr string) *Watch {
	w := &Watch{pid: pid}
	if pid > 0 {
		w.source = procSource{procstat.NewSampler(pid)}
	} else {
		w.source = newStatsSource(statsAddr)
	}
	w.acct = startAccounting(w.source)
	return w
}

// Finish stops sampling and returns the server's cost, the window's CPU being that between
// windowStart and windowEnd against messages echoed in it; nil if the server could never be read.
func (w *Watch) Finish(windowStart, windowEnd time.Time, messages uint64) *report.ServerAccounting {
	points := w.stop()
	for _, p := range points {
		if p.serverOK {
			return serverAccounting(w.source, w.pid, points, windowStart, windowEnd, messages)
		}
	}
	return nil
}

// Close stops sampling, if Finish has not; it is safe to call after Finish and more than once.
func (w *Watch) Close() { w.stop() }

func (w *Watch) stop() []point {
	w.once.Do(func() { w.points = w.acct.finish() })
	return w.points
}
