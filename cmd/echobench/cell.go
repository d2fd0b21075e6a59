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

	"echobench/launch"
	"echobench/loadgen"
	"echobench/procstat"
	"echobench/report"
)

// saturatedShare is the share of its cores above which echobench counts as saturated: the load
// generator, not the server, then limits the throughput.
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

	windowStart := end.Add(-res.Elapsed)
	r.Client = c.clientAccounting(points, windowStart, end)
	if r.Client.Saturated {
		c.warn("echobench used %.0f%% of its %d core(s) during the window: the load generator, not the server, is the bottleneck, so these figures are a floor for the server; give echobench more CPUs or lower the load",
			r.Client.CPUPct, r.Client.Cores)
	}
	if sampler != nil {
		r.Server = serverAccounting(sampler, rootPID, points, windowStart, end)
		if srv == nil {
			// An external server: live threads are all we can read.
			if t, err := sampler.Sample(true); err == nil {
				r.Server.CtxVoluntary, r.Server.CtxInvolunt, r.Server.CtxSource = t.Voluntary, t.Involuntary, "threads"
			}
		}
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

func (c *cell) clientAccounting(points []point, windowStart, windowEnd time.Time) report.ClientAccounting {
	first, last := points[0], points[len(points)-1]
	cores := len(c.pins.client)
	if cores == 0 {
		cores = runtime.NumCPU()
	}
	a := report.ClientAccounting{
		UserS: (last.client.User - first.client.User).Seconds(),
		SysS:  (last.client.Sys - first.client.Sys).Seconds(),
		Cores: cores,
	}
	a.CPUS = a.UserS + a.SysS
	window := cpuBetween(points, windowStart, windowEnd, clientSide)
	a.WindowCPUS = window.Seconds()
	if wall := windowEnd.Sub(windowStart); wall > 0 {
		a.CPUPct = window.Seconds() / wall.Seconds() * 100
		a.Saturated = a.CPUPct >= saturatedShare*100*float64(cores)
	}
	return a
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
