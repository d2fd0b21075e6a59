package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"echobench/internal/launch"
	"echobench/internal/procstat"
	"echobench/loadgen"
	"echobench/report"
)

// saturatedShare is the share of the cores a side can use above which it counts as saturated
// (see judgeSaturation): for echobench, the load generator then limits the throughput.
const saturatedShare = 0.90

// deathNoticeWait is how long a failed run waits to learn whether the server child died.
const deathNoticeWait = time.Second

// cell is one repetition: start the server if it is ours, drive the load while accounting for
// both sides, stop the server, and assemble the run's report.
type cell struct {
	opts     *options
	cfg      loadgen.Config
	pins     pinning
	stderr   io.Writer
	progress bool
	warn     func(format string, args ...any)

	// Filled in by run for the report's settings and environment.
	addr                   string
	pinnedThreads, threads int
}

func (c *cell) run(ctx context.Context, index int) (*report.Run, *loadgen.Result, error) {
	cfg := c.cfg
	var srv *launch.Server
	rootPID := c.opts.serverPID
	if c.opts.model != "" {
		s, err := launch.Start(launch.Options{
			Binary: c.opts.serverBin, Model: c.opts.model,
			Loops: c.opts.loops, Pool: c.opts.pool, Outbound: c.opts.outbound,
			CPUs: c.pins.server, Stderr: c.stderr,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("start server: %w", err)
		}
		srv = s
		// Whatever happens below, the child does not outlive this run. Stop is safe to repeat.
		defer srv.Stop(c.opts.stopGrace)
		cfg.Addr, rootPID = s.Addr, s.PID
		c.pinnedThreads, c.threads = s.PinnedThreads, s.Threads
	}
	c.addr = cfg.Addr
	cfg.Sources = sourcesFor(cfg.Addr, c.opts.sources)

	var sampler *procstat.Sampler
	if rootPID > 0 {
		sampler = procstat.NewSampler(rootPID)
	}
	acct := startAccounting(sampler)

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
	if c.progress {
		cfg.Progress = c.progressLine()
	}
	res, runErr := loadgen.Run(runCtx, cfg)
	end := time.Now()
	close(runOver)
	watch.Wait()
	points := acct.finish()
	if c.progress {
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
		return nil, nil, fmt.Errorf("load: %w", runErr)
	}

	r := report.FromResult(index, res, cfg.Rate > 0)
	var err error
	switch {
	case serverDied.Load():
		err = fmt.Errorf("server %s (pid %d) exited mid-run: %v; partial results; its last words: %s", c.opts.model, srv.PID, srv.ExitError(), srv.StderrTail())
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
	if sampler != nil {
		r.Server = serverAccounting(sampler, rootPID, points, windowStart, windowEnd)
		if srv == nil {
			// An external server: live threads are all we can read.
			if t, err := sampler.Sample(true); err == nil {
				r.Server.CtxVoluntary, r.Server.CtxInvolunt, r.Server.CtxSource = t.Voluntary, t.Involuntary, "threads"
			}
		}
	}
	c.judgeSaturation(&r.Client, r.Server)
	if r.VerifyFailuresTotal > 0 {
		c.warn("VERIFY FAILED: run %d: %d echoes differed from what was sent (%d in the measured window): the server is broken and its figures mean nothing",
			index+1, r.VerifyFailuresTotal, r.VerifyFailures)
	}
	if srv != nil {
		exit := srv.Stop(c.opts.stopGrace)
		r.Server.Exit = exit.Status
		if exit.Killed {
			c.warn("server pid %d did not exit within %v of SIGTERM and was killed", srv.PID, c.opts.stopGrace)
		}
		// wait4's totals include threads that exited and children reaped during the run, which
		// sampling live threads cannot see.
		r.Server.CtxVoluntary, r.Server.CtxInvolunt, r.Server.CtxSource = exit.Usage.Voluntary, exit.Usage.Involuntary, "wait4"
		r.Server.LifetimeCPUS = exit.Usage.CPU().Seconds()
		if st := exit.Stats; st != nil {
			r.ServerCounts = st
			r.ByteCheck = &report.ByteCheck{
				ClientSent: res.TotalSent, ClientReceived: res.TotalReceived,
				ServerIn: st.BytesIn, ServerOut: st.BytesOut,
				InDiffPct:  report.DiffPct(st.BytesIn, res.TotalSent),
				OutDiffPct: report.DiffPct(st.BytesOut, res.TotalReceived),
				Source:     "exit",
			}
		}
	}
	return &r, res, err
}

func (c *cell) clientAccounting(points []point, windowStart, windowEnd time.Time, cfg loadgen.Config) report.ClientAccounting {
	first, last := points[0], points[len(points)-1]
	cores := len(c.pins.client)
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
	window := cpuBetween(points, windowStart, windowEnd, clientSide)
	a.WindowCPUS = window.Seconds()
	if wall := windowEnd.Sub(windowStart); wall > 0 {
		a.CPUPct = window.Seconds() / wall.Seconds() * 100
	}
	return a
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
	if sv != nil && len(c.pins.server) > 0 {
		serverFull = sv.CPUPct >= saturatedShare*100*float64(len(c.pins.server))
	}
	// Unpinned, the two compete for the same CPUs only when together they fill them; on a
	// machine with idle cores, a client using more CPU than the server takes nothing from it.
	contended := sv != nil && cl.CPUPct+sv.CPUPct >= saturatedShare*100*float64(cl.Cores)
	unpinnedHeavy := len(c.pins.client) == 0 && contended && sv.CPUPct > 0 && cl.CPUPct >= sv.CPUPct
	cl.Saturated = clientFull || unpinnedHeavy
	cl.BothSaturated = clientFull && serverFull
	switch {
	case cl.BothSaturated:
		c.warn("both saturated: echobench at %.0f%% of its %d usable core(s), the server at %.0f%% of its %d: loopback work is shared (each side's write runs the other's receive path), so the figure is the pair's limit, not the server's alone",
			cl.CPUPct, clientCores, sv.CPUPct, len(c.pins.server))
	case clientFull:
		c.warn("echobench used %.0f%% of its %d usable core(s) (%d cores, %d engine threads) during the window: the load generator, not the server, is the bottleneck, so these figures are a floor for the server; give echobench more CPUs or -workers, or lower the load",
			cl.CPUPct, clientCores, cl.Cores, cl.EngineThreads)
	case unpinnedHeavy:
		c.warn("echobench (unpinned) used %.0f%% of a core against the server's %.0f%%: sharing the CPUs, the load generator takes as much as the server, so these figures are a floor for the server; pin them apart (-pin) if the machine allows",
			cl.CPUPct, sv.CPUPct)
	}
}

func serverAccounting(s *procstat.Sampler, pid int, points []point, windowStart, windowEnd time.Time) *report.ServerAccounting {
	peaks := s.Peaks()
	a := &report.ServerAccounting{
		PID:           pid,
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
	window := cpuBetween(points, windowStart, windowEnd, serverSide)
	a.WindowCPUS = window.Seconds()
	if wall := windowEnd.Sub(windowStart); wall > 0 {
		a.CPUPct = window.Seconds() / wall.Seconds() * 100
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
