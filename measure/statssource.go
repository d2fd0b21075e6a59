package measure

import (
	"context"
	"net/http"
	"sync"
	"time"

	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/server"
)

// statsFetchTimeout bounds one fetch from a server's stats port. An answer takes a /proc read of
// the server's tree; a port that does not answer in this long is not one to wait on, and the
// point is taken without the server.
const statsFetchTimeout = 2 * time.Second

// statsSettleWait bounds how long the run waits, after the load, for the server's counters to
// account for every byte echobench sent and received: a server reads what was in flight when the
// load closed its connections a little after echobench has stopped counting.
const statsSettleWait = time.Second

// statsSettlePoll is how often the server is asked while its counters settle: the bytes still in
// flight take a few milliseconds to be read, and a second of waiting needs no finer steps.
const statsSettlePoll = 20 * time.Millisecond

// serverSource is where the series of a run reads the server tree's use: echobench's own /proc
// sampler (procSource, for a server on this host whose pid it knows), or the server's snapshots
// from its stats port (statsSource, for one it only has an address for).
type serverSource interface {
	// sample reads the tree's cumulative use now; snap is the server's own snapshot it came
	// from, nil for procSource.
	sample() (t procstat.Tree, snap *child.Snapshot, err error)
	peaks() procstat.Peaks
	via() string // report.ServerAccounting.Source
}

type procSource struct{ sampler *procstat.Sampler }

func (p procSource) sample() (procstat.Tree, *child.Snapshot, error) {
	t, err := p.sampler.Sample(false)
	return t, nil, err
}
func (p procSource) peaks() procstat.Peaks { return p.sampler.Peaks() }
func (procSource) via() string             { return "proc" }

// statsSource polls an echoserver's stats port (-stats-addr), at the series' pace: every
// procstat.SampleInterval, or slower when an answer takes long, which bounds what the polling
// costs the server as procstat bounds its own sampler.
type statsSource struct {
	addr   string
	client *http.Client

	mu      sync.Mutex
	peakSet procstat.Peaks
	err     error // the last fetch's error
}

func newStatsSource(addr string) *statsSource {
	return &statsSource{addr: addr, client: &http.Client{Timeout: statsFetchTimeout}}
}

func (s *statsSource) fetch(ctx context.Context) (child.Snapshot, error) {
	snap, err := child.FetchSnapshot(ctx, s.client, s.addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	if err == nil {
		u := snap.Process
		p := &s.peakSet
		p.Processes, p.Threads = max(p.Processes, u.Processes), max(p.Threads, u.Threads)
		p.RSSBytes, p.RootHWMBytes = max(p.RSSBytes, u.RSSBytes), max(p.RootHWMBytes, u.RootHWMBytes)
		p.Samples++
	}
	return snap, err
}

func (s *statsSource) sample() (procstat.Tree, *child.Snapshot, error) {
	snap, err := s.fetch(context.Background())
	if err != nil {
		return procstat.Tree{}, nil, err
	}
	u := snap.Process
	t := procstat.Tree{
		Time: u.Time, Processes: u.Processes, Threads: u.Threads, RSSBytes: u.RSSBytes,
		User: time.Duration(u.UserS * float64(time.Second)), Sys: time.Duration(u.SysS * float64(time.Second)),
	}
	return t, &snap, nil
}

func (s *statsSource) peaks() procstat.Peaks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakSet
}

func (*statsSource) via() string { return "stats" }

func (s *statsSource) lastErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// settled fetches the server's counters after the load until they have moved, since before, by
// at least the bytes echobench sent and received, or statsSettleWait has passed; it returns the
// last snapshot it got.
func (s *statsSource) settled(ctx context.Context, before child.Snapshot, sent, received uint64) (child.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, statsSettleWait)
	defer cancel()
	var last child.Snapshot
	var lastErr error
	for {
		snap, err := s.fetch(ctx)
		if err == nil {
			last, lastErr = snap, nil
			if snap.BytesIn-before.BytesIn >= sent && snap.BytesOut-before.BytesOut >= received {
				return last, nil
			}
		} else if last.Process == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, lastErr
		case <-time.After(statsSettlePoll):
		}
	}
}

// countsSince is what the server counted between two of its snapshots; Active is the later's.
func countsSince(before, after server.Stats) server.Stats {
	since := func(a, b uint64) uint64 {
		if b < a {
			return 0 // a restarted server: no delta to tell
		}
		return b - a
	}
	return server.Stats{
		Accepted: since(before.Accepted, after.Accepted), Rejected: since(before.Rejected, after.Rejected),
		Active: after.Active, BytesIn: since(before.BytesIn, after.BytesIn), BytesOut: since(before.BytesOut, after.BytesOut),
		DatagramsIn: since(before.DatagramsIn, after.DatagramsIn), DatagramsOut: since(before.DatagramsOut, after.DatagramsOut),
		Dropped: since(before.Dropped, after.Dropped), Goroutines: after.Goroutines,
	}
}
