package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"echobench/internal/child"
	"echobench/internal/cmdline"
	"echobench/loadgen"
	"echobench/measure"
	"echobench/report"
	"echobench/server"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the run failed or is partial (server died, interrupted, cannot start), or an echo was wrong
	exitUsage = 2 // bad flags or a refused target
)

// options are the parsed flags.
type options struct {
	startAt                string // -start-at, RFC 3339
	procs                  int    // -procs: engine processes
	addr, model, serverBin string
	server                 server.Config // passed to the -model child: its flags are Config's own
	serverPID              int
	serverStats            string // -server-stats: the server's stats port
	allowRemote            bool
	pin                    bool
	serverCPUs, clientCPUs string
	conns, connectRate     int
	duration, warmup       time.Duration
	size                   string
	pipeline, rate         int
	wakeOnEcho             bool
	verify, frame          bool
	reconnect, workers     int
	sources                int
	messages               int
	repeat                 int
	knee                   kneeOptions
	out, hlog              string
	stopGrace              time.Duration
	forceProgress          bool
	udpTimeout             time.Duration
}

// childArgs are the server flags the -model child gets; none for -addr, whose server is not ours.
func childArgs(o *options) []string {
	if o.model == "" {
		return nil
	}
	return o.server.Args()
}

// serverOnlyArgs are the server flags set that only a -model child can take. -udp is also the
// load's protocol, so with -addr it says that the server there echoes UDP.
func serverOnlyArgs(cfg server.Config) []string {
	cfg.UDP = false
	return cfg.Args()
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("echobench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "", "load an echo server already listening at host:port (loopback only, see -allow-remote)")
	fs.StringVar(&o.model, "model", "", "start this model as a child echoserver and load it")
	fs.StringVar(&o.serverBin, "server-bin", "", "echoserver binary for -model (default: echoserver next to echobench, else echobench itself)")
	// Every server.Config flag, which -model's child gets as it is (measure.Spec.Server).
	o.server.RegisterFlags(fs)
	fs.IntVar(&o.serverPID, "server-pid", 0, "with -addr: account this process tree as the server")
	fs.StringVar(&o.serverStats, "server-stats", "", "with -addr: account the server from its own snapshots at this stats port (echoserver -stats-addr), for a server whose pid is not on this host; loopback only, see -allow-remote")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.BoolVar(&o.pin, "pin", true, "pin the server and echobench to separate CPUs")
	fs.StringVar(&o.serverCPUs, "server-cpus", "0", "CPUs for the server child (kernel list format: 0,2-3)")
	fs.StringVar(&o.clientCPUs, "client-cpus", "1", "CPUs for echobench")
	// The load's flags: each sets a field of loadgen.Config (see run).
	fs.IntVar(&o.conns, "c", 100, "concurrent connections")
	fs.IntVar(&o.connectRate, "connect-rate", 0, "new connections per second during ramp-up (0 = as fast as possible)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring starts")
	fs.IntVar(&o.procs, "procs", 1, "run the load as N echobench processes on this host, each within its own fd limit, started together and merged (with -model, one server for all)")
	fs.StringVar(&o.startAt, "start-at", "", "wall-clock instant (RFC 3339, e.g. 2026-12-02T10:00:00Z) at which to start connecting; the window opens at it plus -warmup, so agents on several hosts given the same instant measure the same window")
	fs.StringVar(&o.size, "size", "64", "message size in bytes: 64, a list 64,1500, or a range 64-4096 (powers of two between)")
	fs.IntVar(&o.pipeline, "pipeline", 1, "messages in flight per connection (1 = ping-pong)")
	fs.IntVar(&o.rate, "rate", 0, "open loop: total messages per second (0 = closed loop)")
	fs.BoolVar(&o.wakeOnEcho, "wake-on-echo", false, "open loop: wake for every echo and time it at the read, instead of harvest mode (loadgen/README.md)")
	fs.BoolVar(&o.verify, "verify", true, "check every echoed byte")
	fs.BoolVar(&o.frame, "frame", false, "length-prefixed messages with sequence numbers: check boundaries and order")
	fs.IntVar(&o.reconnect, "reconnect", 0, "every connection does K echoes, closes and reconnects (0 = keep connections)")
	fs.IntVar(&o.workers, "workers", 0, "engine event loops (0 = GOMAXPROCS, which pinning sets to the client CPUs)")
	fs.IntVar(&o.sources, "sources", 16, "spread connections over N source addresses, 127.0.0.2 upward, for IPv4 loopback targets (0 = the kernel's choice; one address caps new connections at ~14,000/s)")
	fs.IntVar(&o.messages, "messages", 0, "end the measured window after N echoes, all connections together (0 = no limit; -d still bounds it)")
	fs.DurationVar(&o.udpTimeout, "udp-timeout", loadgen.DefaultUDPTimeout, "with -udp: a datagram unanswered this long counts as lost, once, and its window slot is reused (a late echo then counts as late)")
	fs.IntVar(&o.repeat, "repeat", 1, "run the same cell N times and report mean, stddev and 95% CI of msgs/s")
	// The knee search's flags (knee.go).
	fs.DurationVar(&o.knee.bound, "knee", 0, "search the highest open-loop rate whose corrected p99 stays within this bound (e.g. 1ms); every probe runs -warmup then -d; Runs and Summary are the knee's own probe's")
	fs.Float64Var(&o.knee.tolerance, "knee-tolerance", defaultKneeTolerance, "with -knee: bisect until the highest held and lowest failed rates are this close, relative")
	fs.IntVar(&o.knee.probes, "knee-probes", defaultKneeProbes, "with -knee: at most N open-loop probes (the closed-loop probe that finds the top is extra)")
	fs.IntVar(&o.knee.min, "knee-min", 0, "with -knee: the first lower end of the bracket, msgs/s (0 = half the top)")
	fs.IntVar(&o.knee.max, "knee-max", 0, "with -knee: the top of the bracket, msgs/s, instead of a closed-loop probe's throughput (0 = probe)")
	// The run's own flags.
	fs.StringVar(&o.out, "o", "", "write the full result as JSON to this file")
	fs.StringVar(&o.hlog, "hlog", "", "write the corrected latency of every measured second, runs one after the other, as an HdrHistogram interval log (values in µs) to this file")
	fs.DurationVar(&o.stopGrace, "stop-grace", measure.DefaultStopGrace, "time the server child gets to exit after SIGTERM before SIGKILL")
	fs.BoolVar(&o.forceProgress, "progress", false, "print the progress line even when stderr is not a terminal")
	usage := func() {
		fmt.Fprintf(stderr, "usage: echobench (-model NAME | -addr HOST:PORT) [flags]\n\nmodels: %v\n\nflags:\n", server.Names())
		fs.PrintDefaults()
	}
	if err := cmdline.Parse(fs, args, stderr, usage); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		err := fmt.Errorf(format, args...)
		fmt.Fprintf(stderr, "echobench: %v; run echobench -h to list the flags\n", err)
		return err
	}
	switch {
	case fs.NArg() > 0:
		return nil, bad("unexpected argument %q", fs.Arg(0))
	case (o.addr == "") == (o.model == ""):
		return nil, bad("give exactly one of -addr and -model")
	case o.addr != "" && len(serverOnlyArgs(o.server)) > 0:
		return nil, bad("%s configure the server that -model starts; an -addr server is configured where it was started", strings.Join(serverOnlyArgs(o.server), " "))
	case o.server.UDP && (o.frame || o.reconnect > 0):
		return nil, bad("-frame and -reconnect are TCP's: a UDP datagram keeps its boundaries and carries its own header, and a flow has no connection to reopen")
	case o.udpTimeout <= 0:
		return nil, bad("-udp-timeout %v: want a positive duration", o.udpTimeout)
	case o.serverPID != 0 && o.addr == "":
		return nil, bad("-server-pid goes with -addr; with -model echobench knows the server's pid")
	case o.serverStats != "" && o.addr == "":
		return nil, bad("-server-stats goes with -addr; with -model echobench reads the server it started itself")
	case o.conns <= 0:
		return nil, bad("-c %d: want at least one connection", o.conns)
	case o.duration <= 0:
		return nil, bad("-d %v: want a positive duration", o.duration)
	case o.warmup < 0 || o.connectRate < 0 || o.rate < 0 || o.reconnect < 0 || o.workers < 0 || o.pipeline < 1:
		return nil, bad("-warmup, -connect-rate, -rate, -reconnect and -workers must not be negative, -pipeline at least 1")
	case o.sources < 0 || o.sources > loadgen.MaxSources:
		return nil, bad("-sources %d: want 0 to %d (127.0.0.2 to 127.0.0.254)", o.sources, loadgen.MaxSources)
	case o.repeat < 1:
		return nil, bad("-repeat %d: want at least 1", o.repeat)
	case o.procs < 1 || o.procs > 64:
		return nil, bad("-procs %d: want 1 to 64", o.procs)
	case o.procs > 1 && (o.repeat > 1 || o.knee.bound > 0 || o.hlog != "" || o.messages > 0):
		return nil, bad("-procs runs one merged run: it does not combine with -repeat, -knee, -hlog or -messages")
	case o.procs > o.conns:
		return nil, bad("-procs %d is more than -c %d connections", o.procs, o.conns)
	}
	if err := checkKneeFlags(o); err != nil {
		return nil, bad("%v", err)
	}
	var stray string
	fs.Visit(func(f *flag.Flag) {
		if o.knee.bound == 0 && strings.HasPrefix(f.Name, "knee-") {
			stray = f.Name
		}
	})
	if stray != "" {
		return nil, bad("-%s goes with -knee", stray)
	}
	if o.model != "" {
		m, err := server.Lookup(o.model)
		if err != nil {
			return nil, bad("%v", err)
		}
		if o.server.UDP && m.StartUDP == nil {
			with := strings.Join(server.UDPNames(), " ")
			if with == "" {
				with = "none in this build"
			}
			return nil, bad("-udp: model %s has no UDP variant; models with one: %s", o.model, with)
		}
	}
	return o, nil
}

// lockedWriter serialises writes from the progress callback (Run's own goroutine), the server's
// forwarded stderr, and warnings, which all share echobench's stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// run is echobench minus the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "merge" {
		return runMerge(args[1:], stdout, stderr)
	}
	progress := false
	if f, ok := stderr.(*os.File); ok && isTerminal(int(f.Fd())) {
		progress = true
	}
	stderr = &lockedWriter{w: stderr}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	sizes, err := parseSizes(o.size, o.server.UDP)
	if err == nil && o.server.UDP {
		err = checkUDPSizes(sizes, o.addr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "echobench: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first ^C stops the run in order (the server is stopped, partial results are
		// written); a second one gets the default action and kills echobench at once.
		<-ctx.Done()
		stop()
	}()
	if !o.allowRemote {
		for _, t := range []struct{ flag, addr string }{{"-addr", o.addr}, {"-server-stats", o.serverStats}} {
			if t.addr == "" {
				continue
			}
			if err := checkLoopback(ctx, t.flag, t.addr); err != nil {
				fmt.Fprintf(stderr, "echobench: %v\n", err)
				return exitUsage
			}
		}
	}
	if o.serverPID > 0 && o.serverStats != "" {
		// Both name the same server; /proc read here is exact at every sample and costs the
		// server nothing, so it wins.
		fmt.Fprintf(stderr, "echobench: -server-pid and -server-stats both given: accounting the server from /proc by -server-pid %d, not from %s\n", o.serverPID, o.serverStats)
		o.serverStats = ""
	}

	if o.procs > 1 {
		// Before the fd limit is raised for -c: each process raises its own for its share.
		return runProcs(o, stdout, stderr)
	}
	rep := &report.Report{Schema: report.Schema, Env: measure.CollectEnv()}
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		rep.Warnings = append(rep.Warnings, msg)
		fmt.Fprintf(stderr, "echobench: WARNING: %s\n", msg)
	}
	nofile, err := raiseNoFile(o.conns)
	rep.Env.NoFileLimit = nofile
	if err != nil {
		fmt.Fprintf(stderr, "echobench: %v\n", err)
		return exitFail
	}
	if ports, err := ephemeralPorts(); err == nil && o.conns > ports {
		warn("-c %d is more than the %d ephemeral ports one client address has toward one server address; connects beyond that fail with EADDRNOTAVAIL", o.conns, ports)
	}

	pins, err := setUpPinning(o, rep)
	if err != nil {
		fmt.Fprintf(stderr, "echobench: %v\n", err)
		return exitUsage
	}
	rep.Env.GOMAXPROCS = runtime.GOMAXPROCS(0)

	var startAt time.Time
	if o.startAt != "" {
		t, err := time.Parse(time.RFC3339Nano, o.startAt)
		if err != nil {
			fmt.Fprintf(stderr, "echobench: -start-at %q: want an RFC 3339 time such as 2026-12-02T10:00:00Z\n", o.startAt)
			return exitUsage
		}
		if until := time.Until(t); until > time.Hour {
			fmt.Fprintf(stderr, "echobench: -start-at is %v away; give an instant within the hour\n", until.Round(time.Second))
			return exitUsage
		}
		startAt = t
		rep.Settings.StartAt = o.startAt
	}
	cfg := loadgen.Config{
		StartAt:     startAt,
		Addr:        o.addr,
		Conns:       o.conns,
		ConnectRate: o.connectRate,
		Warmup:      o.warmup,
		Duration:    o.duration,
		Sizes:       sizes,
		Pipeline:    o.pipeline,
		Rate:        o.rate,
		Verify:      o.verify,
		Frame:       o.frame,
		Reconnect:   o.reconnect,
		Workers:     o.workers,
		Messages:    o.messages,
		WakeOnEcho:  o.wakeOnEcho,
		UDP:         o.server.UDP,
		UDPTimeout:  o.udpTimeout,
	}
	rep.Settings = report.Settings{
		Model: o.model, Addr: o.addr, ServerArgs: childArgs(o),
		Loops: o.server.Loops, Pool: o.server.Pool, Outbound: o.server.OutboundLimit,
		Conns: o.conns, ConnectRate: o.connectRate, DurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(),
		Sizes: sizes, Pipeline: o.pipeline, Rate: o.rate, Messages: o.messages, Verify: o.verify, Frame: o.frame,
		Reconnect: o.reconnect, Workers: o.workers, Repeat: o.repeat, Sources: o.sources, WakeOnEcho: o.wakeOnEcho,
	}
	if err := loadgen.Check(cfg); err != nil {
		fmt.Fprintf(stderr, "echobench: %v\n", err)
		return exitUsage
	}
	if err := o.server.Validate(); err != nil {
		fmt.Fprintf(stderr, "echobench: %v\n", err)
		return exitUsage
	}
	if o.server.UDP {
		rep.Settings.UDP, rep.Settings.UDPTimeoutMs = true, float64(o.udpTimeout)/float64(time.Millisecond)
		rep.Settings.Sources = 0
	}
	if o.model != "" {
		bin, self, err := child.FindBinary(o.serverBin)
		if err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			return exitUsage
		}
		rep.Settings.ServerBinary, rep.Settings.ServerSelf = bin, self
	}
	progress = progress || o.forceProgress

	spec := measure.Spec{
		Model: o.model, Server: o.server, ServerBinary: o.serverBin, ServerPID: o.serverPID, ServerStats: o.serverStats,
		Load: cfg, MaxSources: o.sources,
		ServerCPUs: pins.Server, ClientCPUs: pins.Client,
		StopGrace: o.stopGrace, Stderr: stderr, Progress: progress, Warn: warn,
	}
	var hists report.Hists
	var results []*loadgen.Result // the runs' own, for -hlog
	record := func(out measure.Outcome) {
		measure.AddHists(&hists, out.Result)
		if out.Addr != "" {
			rep.Settings.Addr = out.Addr
			rep.Settings.Sources = out.Sources // what was used, not asked for
		}
		if out.PinnedThreads > 0 {
			rep.Env.Pinning.ServerThreadsPinned, rep.Env.Pinning.ServerThreads = out.PinnedThreads, out.Threads
		}
		if out.Run != nil {
			rep.Runs = append(rep.Runs, *out.Run)
			results = append(results, out.Result)
		}
	}
	if o.knee.bound > 0 {
		k := searchKnee(ctx, o, spec, stderr)
		rep.Knee = &k.knee
		if k.out != nil {
			record(*k.out)
			rep.Settings.Rate = k.rate
			rep.Warnings = append(rep.Warnings, k.warnings...)
		}
		if k.err != nil {
			rep.Error = k.err.Error()
		}
	} else {
		for i := range o.repeat {
			out, err := measure.Run(ctx, spec, i)
			record(out)
			if err != nil {
				rep.Error = err.Error()
				break
			}
		}
	}
	if !startAt.IsZero() {
		for _, r := range rep.Runs {
			if late := time.Duration(r.WindowLateS * float64(time.Second)); late > time.Millisecond {
				warn("run %d: the window opened %v after -start-at plus -warmup: the ramp took longer than the warmup, or echobench started after the instant; give a longer -warmup or an instant further ahead", r.Index+1, late.Round(time.Millisecond))
			}
		}
	}
	rep.Summarize(o.model, hists)

	status := exitOK
	if rep.Error != "" {
		status = exitFail
	}
	if rep.Summary.VerifyFailuresTotal > 0 {
		// A wrong echo at any point of any run, warmup and drain included, means the server is
		// broken: its throughput is no result, whatever else went well. The per-run warning is
		// already in the report; this makes the failure the exit status too.
		status = exitFail
	}
	if rep.Error != "" {
		fmt.Fprintf(stderr, "echobench: %s\n", rep.Error)
	}
	if o.out != "" && rep.Error != "" && !anyConnected(rep) {
		// Nothing was measured: a file of results written earlier is worth more than this.
		fmt.Fprintf(stderr, "echobench: no connection was made, so %s is left as it was\n", o.out)
	} else if o.out != "" {
		if err := writeJSON(o.out, rep); err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			status = exitFail
		}
	}
	if o.hlog != "" {
		if err := writeHlogFile(o.hlog, results); err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			status = exitFail
		}
	}
	if rep.Knee != nil {
		writeKnee(stdout, rep.Knee)
	}
	rep.WriteTable(stdout)
	return status
}

// anyConnected reports whether any run of rep established a connection.
func anyConnected(rep *report.Report) bool {
	for _, r := range rep.Runs {
		if r.Conns.Established > 0 {
			return true
		}
	}
	return false
}

func writeJSON(path string, rep *report.Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// setUpPinning applies -pin, -server-cpus and -client-cpus (see measure.PinApart).
func setUpPinning(o *options, rep *report.Report) (measure.Pinning, error) {
	if !o.pin {
		rep.Env.Pinning.Reason = "disabled by -pin=false"
		return measure.Pinning{}, nil
	}
	pins, err := measure.PinApart(o.serverCPUs, o.clientCPUs, o.model != "", &rep.Env.Pinning)
	if err == nil && o.model == "" && o.serverPID > 0 {
		measure.RecordExternal(o.serverPID, pins.Client, &rep.Env.Pinning)
	}
	return pins, err
}
