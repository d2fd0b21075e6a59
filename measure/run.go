// Package measure is one measured run of echobench: start the server as a child process (or
// take one already running), sample both sides' CPU through the run, drive the load, stop the
// server, and account for it all in a report.Run, judging whether the load generator itself
// limited the figures. cmd/echobench, and through it the harness (package bench), and the
// benchmarks of `go test -bench` all measure through it.
package measure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/loadgen"
	"echobench/report"
	"echobench/server"
)

// saturatedShare is the share of the cores a side can use above which it counts as saturated
// (see judgeSaturation): for the client, the load generator then limits the throughput.
const saturatedShare = 0.90

// deathNoticeWait is how long a failed run waits to learn whether the server child died.
const deathNoticeWait = time.Second

// DefaultStopGrace is how long a server child gets to exit after SIGTERM before SIGKILL.
const DefaultStopGrace = 5 * time.Second

// Spec is one measured run: which server, which load, and where each side runs.
type Spec struct {
	// Model, if set, is started as a child server (package child) with Server as its
	// configuration, from ServerBinary ("" = child.FindBinary's choice), for this run alone.
	Model        string
	Server       server.Config
	ServerBinary string
	// ServerPID, without Model, is the root of an external server's process tree at Load.Addr,
	// to account it as the server, its byte check from the tree's kernel counters
	// (procIOByteCheck); 0 leaves the server unaccounted.
	ServerPID int
	// ServerStats, without Model or ServerPID, is the loopback address of the stats port of the
	// server at Load.Addr (echoserver -stats-addr), polled for the server's own account of its
	// tree and counters: its cost and a byte check for a server whose pid is not ours to read.
	ServerStats string
	// Load is the load; with Model its Addr is the child's, and Sources is set by SourcesFor
	// from MaxSources.
	Load       loadgen.Config
	MaxSources int
	// ServerCPUs pins the server child; ClientCPUs are the CPUs this process is pinned to (the
	// caller's doing), for judging saturation. nil means unpinned.
	ServerCPUs, ClientCPUs []int
	// StopGrace is how long the child has after SIGTERM; 0 means DefaultStopGrace.
	StopGrace time.Duration
	// Stderr receives the child's stderr and the progress line; nil discards them.
	Stderr io.Writer
	// Progress prints a progress line on Stderr, rewritten in place.
	Progress bool
	// Warn receives the run's warnings (saturation, wrong echoes, a killed child); nil drops them.
	Warn func(format string, args ...any)
}

// Outcome is what one run produced besides its report.
type Outcome struct {
	// Run is the run's report; nil when the engine refused the configuration.
	Run *report.Run
	// Result is the engine's own result, for merging histograms across runs; nil when Run is.
	Result *loadgen.Result
	// Addr is the address loaded, the child's with Model.
	Addr string
	// Sources is the number of source addresses the load used.
	Sources int
	// PinnedThreads of Threads of the child were on ServerCPUs when checked after start.
	PinnedThreads, Threads int
}

// cell is one run in progress.
type cell struct {
	spec   Spec
	stderr io.Writer
	warn   func(format string, args ...any)
}

// Run measures one run; index numbers it in the report. The error says why the run failed or is
// partial; the Outcome holds whatever was measured all the same.
func Run(ctx context.Context, spec Spec, index int) (Outcome, error) {
	c := &cell{spec: spec, stderr: spec.Stderr, warn: spec.Warn}
	if c.stderr == nil {
		c.stderr = io.Discard
	}
	if c.warn == nil {
		c.warn = func(string, ...any) {}
	}
	if c.spec.StopGrace <= 0 {
		c.spec.StopGrace = DefaultStopGrace
	}
	return c.run(ctx, index)
}

func (c *cell) run(ctx context.Context, index int) (Outcome, error) {
	var out Outcome
	cfg := c.spec.Load
	var srv *child.Server
	rootPID := c.spec.ServerPID
	if c.spec.Model != "" {
		s, err := child.Start(child.Options{
			Binary: c.spec.ServerBinary, Model: c.spec.Model, Config: c.spec.Server,
			CPUs: c.spec.ServerCPUs, Stderr: c.spec.Stderr,
		})
		if err != nil {
			return out, fmt.Errorf("start server: %w", err)
		}
		srv = s
		// Whatever happens below, the child does not outlive this run. Stop is safe to repeat.
		defer srv.Stop(c.spec.StopGrace)
		cfg.Addr, rootPID = s.Addr, s.PID
		out.PinnedThreads, out.Threads = s.PinnedThreads, s.Threads
	}
	out.Addr = cfg.Addr
	cfg.Sources = 0 // UDP flows open no connections, so they meet no port limit to spread over
	if !cfg.UDP {
		cfg.Sources = SourcesFor(cfg.Addr, c.spec.MaxSources)
	}
	out.Sources = cfg.Sources

	var sampler *procstat.Sampler
	var stats *statsSource
	var source serverSource
	switch {
	case rootPID > 0:
		sampler = procstat.NewSampler(rootPID)
		source = procSource{sampler}
	case c.spec.ServerStats != "":
		stats = newStatsSource(c.spec.ServerStats)
		source = stats
	}
	// An external server has no stats line to check bytes against; the kernel's counters of its
	// tree stand in, read before the first connect so its start-up reads are not in the delta.
	countIO := srv == nil && rootPID > 0
	var ioBefore, ioAfter procstat.IO
	var ioErr error
	if countIO {
		ioBefore, ioErr = procstat.TreeIO(rootPID)
	}
	acct := startAccounting(source)

	// A server that dies mid-run ends the load at once instead of leaving the engine to count
	// failures for the rest of the duration.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var serverDied atomic.Bool
	runOver := make(chan struct{})
	var watch sync.WaitGroup
	if srv != nil {
		watch.Go(func() {
			select {
			case <-srv.Exited():
				serverDied.Store(true)
				cancel()
			case <-runOver:
			}
		})
	}
	if c.spec.Progress {
		cfg.Progress = c.progressLine()
	}
	res, runErr := loadgen.Run(runCtx, cfg)
	end := time.Now()
	close(runOver)
	watch.Wait()
	points := acct.finish()
	if countIO && ioErr == nil {
		// Twice, keeping the larger: a child reaped during one walk is in neither its own
		// counters nor its parent's as that walk read them (procstat.TreeIO).
		var first procstat.IO
		if first, ioErr = procstat.TreeIO(rootPID); ioErr == nil {
			ioAfter, ioErr = procstat.TreeIO(rootPID)
			ioAfter = procstat.MaxIO(first, ioAfter)
		}
	}
	if c.spec.Progress {
		fmt.Fprintln(c.stderr)
	}
	if srv != nil && !serverDied.Load() && (runErr != nil || (res != nil && res.ServerGone)) {
		// The engine can see the resets before wait4 has reported the death; give the exit a
		// moment to arrive so the report names the real cause.
		select {
		case <-srv.Exited():
			serverDied.Store(true)
		case <-time.After(deathNoticeWait):
		}
	}
	if res == nil {
		// The engine refused the configuration before it started.
		return out, fmt.Errorf("load: %w", runErr)
	}

	r := FromResult(index, res, cfg.Rate > 0, cfg.UDP)
	var err error
	switch {
	case serverDied.Load():
		err = fmt.Errorf("server %s (pid %d) exited mid-run: %w; partial results; its last words: %s", c.spec.Model, srv.PID, srv.ExitError(), srv.StderrTail())
	case ctx.Err() != nil:
		err = errors.New("interrupted by signal; partial results")
	case runErr != nil:
		err = fmt.Errorf("load against %s: %w; partial results", cfg.Addr, runErr)
	case res.ServerGone:
		err = fmt.Errorf("every connection to %s failed mid-run: the server died or reset them all; partial results", cfg.Addr)
	}
	if err != nil {
		r.Error = err.Error()
	}

	windowStart, windowEnd := res.WindowStart, res.WindowEnd
	if windowStart.IsZero() || !windowEnd.After(windowStart) {
		// An engine that does not report its window: infer it from its length and the run's
		// end. That places it late by the drain and teardown after the window, so it is only
		// a fallback.
		windowStart, windowEnd = end.Add(-res.Elapsed), end
	}
	r.Client = c.clientAccounting(points, windowStart, windowEnd, cfg)
	if gap := longestGap(points, windowStart, windowEnd); gap > starvedGap {
		c.warn("run %d: the CPU sampler took no point for %.1fs of the window: its idle policy yields to every other thread, and the CPUs it may use were full; the window's CPU figures are interpolated across that gap, so pin echobench and the server apart (-pin) or leave a CPU free",
			index+1, gap.Seconds())
	}
	if source != nil {
		r.Server = serverAccounting(source, rootPID, points, windowStart, windowEnd, res.Messages)
		if stats == nil {
			// A server known by its stats port alone may be on another host, whose steal this
			// host's /proc/stat does not count.
			r.Server.StealPct = windowSteal(points, windowStart, windowEnd, c.serverCPUs(rootPID))
		}
		if stats != nil && r.Server.WindowOpen == nil {
			c.warn("run %d: no snapshot from the server's stats port %s (%v), so no server accounting", index+1, c.spec.ServerStats, stats.lastErr())
			r.Server = nil
		}
		if sampler != nil && srv == nil {
			// An external server: live threads are all we can read.
			if t, err := sampler.Sample(true); err == nil {
				r.Server.CtxVoluntary, r.Server.CtxInvolunt, r.Server.CtxSource = t.Voluntary, t.Involuntary, "threads"
			}
		}
	}
	if res.Messages > 0 {
		// With no echo in the window there is no throughput the meter could have limited.
		onHost := r.Server
		if stats != nil {
			// A server known by its stats port alone may be on another host (behind a
			// port-forward): its CPU says nothing of contention for echobench's cores.
			onHost = nil
		}
		c.judgeSaturation(&r.Client, onHost)
	}
	if r.HostLimited = report.JudgeHost(r.Client, r.Server); r.HostLimited != nil {
		c.warn("run %d: host-limited: %s: the latency tails are partly the host's; on a shared virtual machine, rerun when it is quieter or compare runs taken together",
			index+1, r.HostLimited.Text())
	}
	if r.VerifyFailuresTotal > 0 {
		c.warn("VERIFY FAILED: run %d: %d echoes differed from what was sent (%d in the measured window): the server is broken and its figures mean nothing",
			index+1, r.VerifyFailuresTotal, r.VerifyFailures)
	}
	if srv != nil {
		exit := srv.Stop(c.spec.StopGrace)
		r.Server.Exit = exit.Status
		if exit.Killed {
			c.warn("server pid %d did not exit within %v of SIGTERM and was killed", srv.PID, c.spec.StopGrace)
		}
		// wait4's totals include threads that exited and children reaped during the run, which
		// sampling live threads cannot see.
		r.Server.CtxVoluntary, r.Server.CtxInvolunt, r.Server.CtxSource = exit.Usage.Voluntary, exit.Usage.Involuntary, "wait4"
		r.Server.LifetimeCPUS = exit.Usage.CPU().Seconds()
		if st := exit.Stats; st != nil {
			r.ServerCounts = st
			r.ByteCheck = byteCheck(res, st.BytesIn, st.BytesOut, "exit")
			if cfg.UDP {
				r.ByteCheck.UDP = udpByteCheck(res, st)
				if !r.ByteCheck.UDP.Consistent {
					c.warn("run %d: datagram check does not hold: the server read %d datagrams (%d bytes) of the %d (%d) echobench sent and sent %d (%d) of the %d (%d) echobench read back; one side's counts are wrong",
						index+1, st.DatagramsIn, st.BytesIn, res.TotalDatagramsSent, res.TotalSent, st.DatagramsOut, st.BytesOut, res.TotalDatagramsReceived, res.TotalReceived)
				}
			}
		}
	} else if stats != nil && r.Server != nil {
		c.statsByteCheck(ctx, &r, stats, points, res, index)
	} else if countIO && ioErr == nil {
		var warnings []string
		r.ByteCheck, warnings = procIOByteCheck(res, ioBefore, ioAfter)
		for _, w := range warnings {
			c.warn("run %d: %s", index+1, w)
		}
	} else if countIO {
		c.warn("run %d: no byte check for server pid %d: its kernel counters: %v", index+1, rootPID, ioErr)
	}
	out.Run, out.Result = &r, res
	return out, err
}

func (c *cell) clientAccounting(points []point, windowStart, windowEnd time.Time, cfg loadgen.Config) report.ClientAccounting {
	first, last := points[0], points[len(points)-1]
	cores := len(c.spec.ClientCPUs)
	if cores == 0 {
		cores = runtime.NumCPU()
	}
	// The engine's own rule (loadgen.Run): Workers, else GOMAXPROCS, never more than Conns.
	threads := cfg.Workers
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	a := report.ClientAccounting{
		UserS:         (last.client.User - first.client.User).Seconds(),
		SysS:          (last.client.Sys - first.client.Sys).Seconds(),
		Cores:         cores,
		EngineThreads: min(threads, cfg.Conns),
	}
	a.CPUS = a.UserS + a.SysS
	a.WindowCPUS, a.CPUPct = windowCPU(points, windowStart, windowEnd, clientSide)
	cpus := c.spec.ClientCPUs
	if cpus == nil {
		cpus, _ = affinity.Of(0) // nil on error: every CPU
	}
	a.StealPct = windowSteal(points, windowStart, windowEnd, cpus)
	return a
}

// serverCPUs are the CPUs the server may run on, for its steal: its pinning, else the affinity
// of its root process, else nil (every CPU).
func (c *cell) serverCPUs(rootPID int) []int {
	if c.spec.ServerCPUs != nil {
		return c.spec.ServerCPUs
	}
	cpus, _ := affinity.Of(rootPID)
	return cpus
}

// judgeSaturation decides whether echobench limited the throughput, sets the flags and warns.
//
// echobench can use at most min(cores, engine threads) cores: one engine thread pegged at 100%
// on two cores is saturated at 50% of the machine. Unpinned, echobench and the server share the
// CPUs, so neither can reach its nominal share; there an echobench that uses at least as much
// CPU as the server is itself taking the cores the server would need. And over loopback a
// message's kernel cost is roughly symmetric (each side's write runs the other's receive path),
// so at ping-pong both sides can be near 100%: then the figure is the pair's limit, and blaming
// the meter alone would be as wrong as blaming the server alone.
func (c *cell) judgeSaturation(cl *report.ClientAccounting, sv *report.ServerAccounting) {
	clientCores := min(cl.Cores, max(cl.EngineThreads, 1))
	clientFull := cl.CPUPct >= saturatedShare*100*float64(clientCores)
	serverFull := false
	if sv != nil && len(c.spec.ServerCPUs) > 0 {
		serverFull = sv.CPUPct >= saturatedShare*100*float64(len(c.spec.ServerCPUs))
	}
	// Unpinned, the two compete for the same CPUs only when together they fill them; on a
	// machine with idle cores, a client using more CPU than the server takes nothing from it.
	contended := sv != nil && cl.CPUPct+sv.CPUPct >= saturatedShare*100*float64(cl.Cores)
	unpinnedHeavy := len(c.spec.ClientCPUs) == 0 && contended && sv.CPUPct > 0 && cl.CPUPct >= sv.CPUPct
	cl.Saturated = clientFull || unpinnedHeavy
	cl.BothSaturated = clientFull && serverFull
	switch {
	case cl.BothSaturated:
		c.warn("both saturated: echobench at %.0f%% of its %d usable core(s), the server at %.0f%% of its %d: loopback work is shared (each side's write runs the other's receive path), so the figure is the pair's limit, not the server's alone",
			cl.CPUPct, clientCores, sv.CPUPct, len(c.spec.ServerCPUs))
	case clientFull:
		c.warn("echobench used %.0f%% of its %d usable core(s) (%d cores, %d engine threads) during the window: the load generator, not the server, is the bottleneck, so these figures are a floor for the server; give echobench more CPUs or -workers, or lower the load",
			cl.CPUPct, clientCores, cl.Cores, cl.EngineThreads)
	case unpinnedHeavy:
		c.warn("echobench (unpinned) used %.0f%% of a core against the server's %.0f%%: sharing the CPUs, the load generator takes as much as the server, so these figures are a floor for the server; pin them apart (-pin) if the machine allows",
			cl.CPUPct, sv.CPUPct)
	}
}

// statsByteCheck checks echobench's bytes against the server's own counters from its stats
// port: what they moved by from the first snapshot (before the first connect) to one taken once
// they have settled after the load.
func (c *cell) statsByteCheck(ctx context.Context, r *report.Run, stats *statsSource, points []point, res *loadgen.Result, index int) {
	first := points[0].snap
	if first == nil {
		c.warn("run %d: no byte check from the server's stats port: it did not answer before the first connect", index+1)
		return
	}
	last, err := stats.settled(ctx, *first, res.TotalSent, res.TotalReceived)
	if err != nil && last.Process == nil {
		c.warn("run %d: no byte check from the server's stats port: %v", index+1, err)
		return
	}
	st := countsSince(first.Stats, last.Stats)
	r.ServerCounts = &st
	r.ByteCheck = byteCheck(res, st.BytesIn, st.BytesOut, "stats")
	if c.spec.Load.UDP {
		r.ByteCheck.UDP = udpByteCheck(res, &st)
	}
}

func serverAccounting(s serverSource, pid int, points []point, windowStart, windowEnd time.Time, messages uint64) *report.ServerAccounting {
	peaks := s.peaks()
	a := &report.ServerAccounting{
		PID:           pid,
		Source:        s.via(),
		PeakRSSBytes:  peaks.RSSBytes,
		RootHWMBytes:  peaks.RootHWMBytes,
		PeakThreads:   peaks.Threads,
		PeakProcesses: peaks.Processes,
		Samples:       peaks.Samples,
	}
	var first, last *point
	for i := range points {
		if points[i].serverOK {
			if first == nil {
				first = &points[i]
			}
			last = &points[i]
		}
	}
	if first == nil {
		return a
	}
	a.UserS = (last.server.User - first.server.User).Seconds()
	a.SysS = (last.server.Sys - first.server.Sys).Seconds()
	a.CPUS = a.UserS + a.SysS
	a.WindowCPUS, a.CPUPct = windowCPU(points, windowStart, windowEnd, serverSide)
	a.WindowUserS, _ = windowCPU(points, windowStart, windowEnd, serverUser)
	a.WindowSysS, _ = windowCPU(points, windowStart, windowEnd, serverSys)
	if messages > 0 {
		a.CPUPerMsgUs = a.WindowCPUS / float64(messages) * 1e6
	}
	if first.snap != nil {
		a.PID = first.snap.Process.PID
		a.WindowOpen, a.WindowClose = snapshotAt(points, windowStart), snapshotAt(points, windowEnd)
	}
	return a
}

// progressLine returns the engine's Progress callback: one line on stderr, rewritten in place.
func (c *cell) progressLine() func(loadgen.Progress) {
	var last loadgen.Progress
	return func(p loadgen.Progress) {
		phase := "warmup"
		if p.Measuring {
			phase = "measuring"
		}
		var rate float64
		if dt := (p.Elapsed - last.Elapsed).Seconds(); dt > 0 && p.Messages >= last.Messages {
			rate = float64(p.Messages-last.Messages) / dt
		}
		last = p
		fmt.Fprintf(c.stderr, "\r%6.1fs %-9s  conns %d  msgs %d  %.0f msgs/s  errors %d   ",
			p.Elapsed.Seconds(), phase, p.Established, p.Messages, rate, p.Errors)
	}
}
