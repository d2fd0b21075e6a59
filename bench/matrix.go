package bench

import (
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// The BENCH levels of `make bench`.
const (
	LevelQuick   = "quick"   // every sweep at a few points, one round: under 3 minutes
	LevelDefault = "default" // the matrix of the issue, headline cells adaptive: under 12 minutes
	LevelFull    = "full"    // longer windows, more points, every cell adaptive: under 45 minutes
)

// Headline is the cell the ranked table leads with: many long-lived connections exchanging
// small messages, where the IO model shows.
const Headline = "conns=1000"

// Limits are the machine's limits the matrix and the n/a decisions depend on.
type Limits struct {
	// NoFile is the hard RLIMIT_NOFILE: the most descriptors one process (a server, or
	// echobench) can have, since echobench raises its soft limit to it and its children inherit.
	NoFile uint64
}

// CurrentLimits reads this machine's limits.
func CurrentLimits() (Limits, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return Limits{}, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	return Limits{NoFile: lim.Max}, nil
}

// fdHeadroom is the descriptors a process needs besides its connections: echobench keeps 64 for
// stdio, its child's pipes, epoll and /proc files (cmd/echobench's fdSlack), and a server about
// a dozen for stdio, its listener, epoll or io_uring, an eventfd and the Go runtime's own.
const fdHeadroom = 100

// MaxConns is the most connections one server can hold under lim: both the server and echobench
// hold one descriptor per connection, each in its own process under the same hard limit, which
// a user without CAP_SYS_RESOURCE cannot raise. Rounded down to a hundred.
func (l Limits) MaxConns() int {
	if l.NoFile <= fdHeadroom {
		return 0
	}
	return int(l.NoFile-fdHeadroom) / 100 * 100
}

// levelPlan is what a level measures and how long each run is.
type levelPlan struct {
	warmup, duration time.Duration // every closed- and open-loop cell
	idleWarmup, idle time.Duration // idle cells: each connection must echo in the window (idleRate)
	// Knee probes run with their own window; the search's length is the probe count's business
	// (echobench -knee), bounded by kneeTimeout.
	kneeWarmup, kneeDuration, kneeTimeout time.Duration
	kneeProbes                            int     // echobench -knee-probes: the search's cap
	kneeTolerance                         float64 // -knee-tolerance: how close its bracket ends
	conns, sizes, pipelines, idleConns    []int
	rates                                 []int
	knees                                 []time.Duration
	maxConns                              bool // add Limits.MaxConns to the connections sweep
	adaptiveAll                           bool // every cell but the knee is adaptive, not only the headline ones
	repeat, maxRepeat                     int
	budget                                time.Duration
}

// The levels. The durations are chosen to fit the budgets on a 2-core machine with 11 rows,
// from measured run times: a run costs its warmup and window plus 0.15 to 0.4 s to start and
// stop (about 3 s at 10,000 connections, whose ramp-up and teardown dominate), and a knee
// search its probes' windows plus about 0.5 s. Quick's windows are short enough that a thread
// or process per connection may leave some clients unserved (judge says how many: blocking 999
// of 1,000 in one quick run, all in the next); default's warmup is longer for that reason.
//
// The rate grid is absolute and common to all rows, not relative to each row's own saturation:
// so that the hockey-stick figure compares every row at the same offered load (what a user
// planning capacity asks), and so that a rate cell is the same load for every row, as every
// other cell is. It runs from well below the slowest event loop's saturation on this machine
// (about 130,000 msgs/s at 1,000 × 64 B for the pair) to past the fastest's; the rows that
// saturate earlier show their stall at the upper points.
var levels = map[string]levelPlan{
	LevelQuick: {
		warmup: 300 * time.Millisecond, duration: 700 * time.Millisecond,
		idleWarmup: 300 * time.Millisecond, idle: time.Second,
		kneeWarmup: 100 * time.Millisecond, kneeDuration: 300 * time.Millisecond, kneeTimeout: 45 * time.Second,
		kneeProbes: 5, kneeTolerance: 0.1,
		conns: []int{100, 1000}, sizes: []int{64, 16 << 10}, pipelines: []int{1, 16},
		idleConns: []int{1, 1000}, rates: []int{30000, 150000},
		knees:  []time.Duration{10 * time.Millisecond},
		repeat: 1, maxRepeat: 1, budget: 150 * time.Second,
	},
	LevelDefault: {
		warmup: 500 * time.Millisecond, duration: time.Second,
		idleWarmup: 500 * time.Millisecond, idle: 1500 * time.Millisecond,
		kneeWarmup: 300 * time.Millisecond, kneeDuration: 700 * time.Millisecond, kneeTimeout: 90 * time.Second,
		kneeProbes: 7, kneeTolerance: 0.05,
		conns: []int{1, 10, 100, 1000, 10000}, sizes: []int{64, 1 << 10, 16 << 10, 64 << 10}, pipelines: []int{1, 16},
		idleConns: []int{1, 1000, 10000}, rates: []int{20000, 60000, 100000, 150000},
		knees:  []time.Duration{time.Millisecond, 10 * time.Millisecond},
		repeat: 1, maxRepeat: 5, budget: 600 * time.Second,
	},
	LevelFull: {
		warmup: time.Second, duration: 2 * time.Second,
		idleWarmup: time.Second, idle: 2 * time.Second,
		kneeWarmup: 300 * time.Millisecond, kneeDuration: time.Second, kneeTimeout: 240 * time.Second,
		kneeProbes: 10, kneeTolerance: 0.05,
		conns: []int{1, 10, 100, 1000, 10000}, sizes: []int{64, 1 << 10, 16 << 10, 64 << 10}, pipelines: []int{1, 16},
		idleConns: []int{1, 1000, 10000}, rates: []int{10000, 25000, 50000, 75000, 100000, 125000, 150000, 200000},
		knees:    []time.Duration{time.Millisecond, 10 * time.Millisecond},
		maxConns: true, adaptiveAll: true,
		repeat: 1, maxRepeat: 5, budget: 38 * time.Minute,
	},
}

// Budget is the wall time a level's run aims at: its adaptive rounds stop there.
func Budget(level string) time.Duration { return levels[level].budget }

// MaxRepeat is a level's cap of rounds for an adaptive cell.
func MaxRepeat(level string) int { return levels[level].maxRepeat }

// idlePerConnRate is the messages per second each connection of an idle cell sends.
const idlePerConnRate = 2

// idleNote says how the idle cells' RSS per connection is measured; IdleRSSPerConn computes it.
const idleNote = "idle: open loop at two 64 B messages per connection per second; RSS per connection = " +
	"(peak RSS at N connections − peak RSS of the same row at 1 connection, idle=1) / N"

// udpNote says what the UDP cell measures.
const udpNote = "udp: 100 UDP flows (one connected socket each) × 64 B closed loop, ping-pong, against each model's UDP variant " +
	"(echobench -udp); a datagram unanswered for 200 ms counts as lost and its slot is reused, so loss % is part of the result (loadgen/README.md, \"UDP\")"

// Matrix returns the cells of a BENCH level, in the order they run: the connections sweep
// first, so that each row's closed-loop throughput at 1,000 connections is known before its
// knee cells, which it brackets.
func Matrix(level string, lim Limits) ([]Cell, error) {
	p, ok := levels[level]
	if !ok {
		return nil, fmt.Errorf("BENCH=%s: want %s, %s or %s", level, LevelQuick, LevelDefault, LevelFull)
	}
	window := func(warmup, d time.Duration) []string {
		return []string{"-warmup", warmup.String(), "-d", d.String()}
	}
	closed := func(name, sweep string, x float64, conns, size, pipeline int) Cell {
		args := []string{"-c", strconv.Itoa(conns), "-size", strconv.Itoa(size)}
		if pipeline > 1 {
			args = append(args, "-pipeline", strconv.Itoa(pipeline))
		}
		return Cell{Name: name, Sweep: sweep, X: x, Conns: conns, Warmup: p.warmup, Duration: p.duration,
			Args: append(args, window(p.warmup, p.duration)...), Adaptive: p.adaptiveAll}
	}
	var cells []Cell
	have := map[string]Cell{}
	add := func(c Cell) {
		cells = append(cells, c)
		have[c.Name] = c
	}
	// alias makes c stand for an earlier cell of the same load, instead of running it twice.
	alias := func(c Cell, same string) Cell {
		if earlier, ok := have[same]; ok && slices.Equal(earlier.Args, c.Args) {
			c.Same = same
		}
		return c
	}

	conns := append([]int(nil), p.conns...)
	maxConns := lim.MaxConns()
	if p.maxConns && maxConns > conns[len(conns)-1] {
		conns = append(conns, maxConns)
	}
	for _, n := range conns {
		c := closed(fmt.Sprintf("conns=%d", n), SweepConns, float64(n), n, 64, 1)
		if n == maxConns && p.maxConns {
			c.Note = fmt.Sprintf("conns=%d: the most connections one server can hold here: the hard RLIMIT_NOFILE "+
				"is %d per process and cannot be raised without CAP_SYS_RESOURCE; %d descriptors are left for "+
				"the server's own and echobench's", n, lim.NoFile, lim.NoFile-uint64(n))
		}
		if c.Name == Headline {
			c.Adaptive = true
		}
		add(c)
	}
	for _, size := range p.sizes {
		add(alias(closed("size="+sizeName(size), SweepSize, float64(size), 100, size, 1), "conns=100"))
	}
	for _, depth := range p.pipelines {
		add(alias(closed(fmt.Sprintf("pipeline=%d", depth), SweepPipeline, float64(depth), 1000, 64, depth), Headline))
	}
	reconnect := closed("reconnect", SweepReconnect, 100, 100, 64, 1)
	reconnect.Args = append([]string{"-reconnect", "1"}, reconnect.Args...)
	reconnect.Reconnect, reconnect.Adaptive = true, true
	add(reconnect)
	for _, n := range p.idleConns {
		// Two messages per connection per second: idle enough that memory, not CPU, is what
		// the cell shows, yet every connection echoes at least once in a one-second window
		// (judge checks ConnsEchoed; at one a second, a connection whose turn fell at the
		// window's end was counted as not served).
		add(Cell{Name: fmt.Sprintf("idle=%d", n), Sweep: SweepIdle, X: float64(n), Conns: n,
			Warmup: p.idleWarmup, Duration: p.idle, Note: idleNote, Adaptive: p.adaptiveAll,
			Args: append([]string{"-c", strconv.Itoa(n), "-size", "64", "-rate", strconv.Itoa(idlePerConnRate * n)},
				window(p.idleWarmup, p.idle)...)})
	}
	for _, rate := range p.rates {
		add(Cell{Name: fmt.Sprintf("rate=%d", rate), Sweep: SweepRate, X: float64(rate), Conns: 1000,
			Warmup: p.warmup, Duration: p.duration, Adaptive: p.adaptiveAll,
			Note: "rate: open loop at 1000 × 64 B on a common absolute grid of offered msgs/s; latency from each message's intended send time",
			Args: append([]string{"-c", "1000", "-size", "64", "-rate", strconv.Itoa(rate)},
				window(p.warmup, p.duration)...)})
	}
	add(Cell{Name: "udp", Sweep: SweepUDP, X: 100, Conns: 100, Warmup: p.warmup, Duration: p.duration,
		Adaptive: p.adaptiveAll, Note: udpNote,
		Args: append([]string{"-udp", "-c", "100", "-size", "64"}, window(p.warmup, p.duration)...)})
	for _, bound := range p.knees {
		add(Cell{Name: "knee=" + bound.String(), Sweep: SweepKnee, X: float64(bound.Microseconds()), Conns: 1000,
			Warmup: p.kneeWarmup, Duration: p.kneeDuration, Timeout: p.kneeTimeout, Bracket: Headline,
			Note: "knee: the highest open-loop rate at 1000 × 64 B whose corrected p99 holds the bound " +
				"(echobench -knee), its bracket starting at a quarter of and twice the row's own conns=1000 throughput",
			Args: append([]string{"-c", "1000", "-size", "64", "-knee", bound.String(),
				"-knee-probes", strconv.Itoa(p.kneeProbes), "-knee-tolerance", strconv.FormatFloat(p.kneeTolerance, 'g', -1, 64)},
				window(p.kneeWarmup, p.kneeDuration)...)})
	}
	return cells, nil
}

// sizeName is a message size as the cell names show it: 64B, 1KiB, 16KiB.
func sizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// IdleRSSPerConn is a row's server RSS per connection at an idle cell, by the method idleNote
// states: the peak RSS over the cell's runs, less the same row's at the one-connection idle
// cell, over the connections. ok is false when either cell has no runs.
func IdleRSSPerConn(results []*Result, cells []Cell, row, cell string) (perConn float64, ok bool) {
	var base, at *Result
	var conns float64
	for _, c := range cells {
		if c.Sweep != SweepIdle {
			continue
		}
		for _, r := range results {
			if r.Row.Name != row || r.Cell != c.Name || len(r.Runs) == 0 {
				continue
			}
			if c.X == 1 {
				base = r
			}
			if c.Name == cell {
				at, conns = r, c.X
			}
		}
	}
	if base == nil || at == nil || conns <= 1 {
		return 0, false
	}
	peak := func(r *Result) float64 {
		m := 0.0
		for _, s := range r.Runs {
			m = max(m, float64(s.ServerPeakRSSBytes))
		}
		return m
	}
	return (peak(at) - peak(base)) / conns, true
}

// DefaultCells are the two load shapes of the first comparison, before Matrix: 1,000 × 64 B
// ping-pong, and short connections that do one echo each.
func DefaultCells(warmup, duration time.Duration) []Cell {
	common := []string{"-size", "64", "-warmup", warmup.String(), "-d", duration.String()}
	return []Cell{
		{Name: "1000x64B", Sweep: SweepConns, X: 1000, Conns: 1000, Warmup: warmup, Duration: duration,
			Args: append([]string{"-c", "1000"}, common...)},
		{Name: "reconnect", Sweep: SweepReconnect, X: 100, Conns: 100, Reconnect: true, Warmup: warmup, Duration: duration,
			Args: append([]string{"-c", "100", "-reconnect", "1"}, common...)},
	}
}
