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
	"sync"
	"syscall"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/launch"
	"echobench/loadgen"
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
	addr, model, serverBin  string
	loops, pool, outbound   int
	serverPID               int
	allowRemote             bool
	pin                     bool
	serverCPUs, clientCPUs  string
	conns, connectRate      int
	duration, warmup        time.Duration
	size                    string
	pipeline, rate          int
	verify, frame           bool
	reconnect, workers      int
	sources                 int
	messages                int
	repeat                  int
	out                     string
	stopGrace               time.Duration
	progress, forceProgress bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("echobench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "", "load an echo server already listening at host:port (loopback only, see -allow-remote)")
	fs.StringVar(&o.model, "model", "", "start this model as a child echoserver and load it")
	fs.StringVar(&o.serverBin, "server-bin", "", "echoserver binary for -model (default: echoserver next to echobench, else echobench itself)")
	fs.IntVar(&o.loops, "loops", 0, "passed to the server: event loops or threads (0 = its GOMAXPROCS)")
	fs.IntVar(&o.pool, "pool", 0, "passed to the server: connections served at once, for pooled models")
	fs.IntVar(&o.outbound, "outbound", 0, "passed to the server: bytes buffered toward one client")
	fs.IntVar(&o.serverPID, "server-pid", 0, "with -addr: account this process tree as the server")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.BoolVar(&o.pin, "pin", true, "pin the server and echobench to separate CPUs")
	fs.StringVar(&o.serverCPUs, "server-cpus", "0", "CPUs for the server child (kernel list format: 0,2-3)")
	fs.StringVar(&o.clientCPUs, "client-cpus", "1", "CPUs for echobench")
	fs.IntVar(&o.conns, "c", 100, "concurrent connections")
	fs.IntVar(&o.connectRate, "connect-rate", 0, "new connections per second during ramp-up (0 = as fast as possible)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring starts")
	fs.StringVar(&o.size, "size", "64", "message size in bytes: 64, a list 64,1500, or a range 64-4096 (powers of two between)")
	fs.IntVar(&o.pipeline, "pipeline", 1, "messages in flight per connection (1 = ping-pong)")
	fs.IntVar(&o.rate, "rate", 0, "open loop: total messages per second (0 = closed loop)")
	fs.BoolVar(&o.verify, "verify", true, "check every echoed byte")
	fs.BoolVar(&o.frame, "frame", false, "length-prefixed messages with sequence numbers: check boundaries and order")
	fs.IntVar(&o.reconnect, "reconnect", 0, "every connection does K echoes, closes and reconnects (0 = keep connections)")
	fs.IntVar(&o.workers, "workers", 0, "engine event loops (0 = GOMAXPROCS, which pinning sets to the client CPUs)")
	fs.IntVar(&o.sources, "sources", 16, "spread connections over N source addresses, 127.0.0.2 upward, for IPv4 loopback targets (0 = the kernel's choice; one address caps new connections at ~14,000/s)")
	fs.IntVar(&o.messages, "messages", 0, "end the measured window after N echoes, all connections together (0 = no limit; -d still bounds it)")
	fs.IntVar(&o.repeat, "repeat", 1, "run the same cell N times and report mean, stddev and 95% CI of msgs/s")
	fs.StringVar(&o.out, "o", "", "write the full result as JSON to this file")
	fs.DurationVar(&o.stopGrace, "stop-grace", 5*time.Second, "time the server child gets to exit after SIGTERM before SIGKILL")
	fs.BoolVar(&o.forceProgress, "progress", false, "print the progress line even when stderr is not a terminal")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: echobench (-model NAME | -addr HOST:PORT) [flags]\n\nmodels: %v\n\nflags:\n", server.Names())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		err := fmt.Errorf(format, args...)
		fmt.Fprintf(stderr, "echobench: %v\n", err)
		fs.Usage()
		return err
	}
	switch {
	case fs.NArg() > 0:
		return nil, bad("unexpected argument %q", fs.Arg(0))
	case (o.addr == "") == (o.model == ""):
		return nil, bad("give exactly one of -addr and -model")
	case o.serverPID != 0 && o.addr == "":
		return nil, bad("-server-pid goes with -addr; with -model echobench knows the server's pid")
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
	}
	if o.model != "" {
		if _, err := server.Lookup(o.model); err != nil {
			return nil, bad("%v", err)
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
	sizes, err := parseSizes(o.size)
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
	if o.addr != "" && !o.allowRemote {
		if err := checkLoopback(ctx, o.addr); err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			return exitUsage
		}
	}

	rep := &report.Report{Schema: report.Schema, Env: report.CollectEnv()}
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

	cfg := loadgen.Config{
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
	}
	rep.Settings = report.Settings{
		Model: o.model, Addr: o.addr, Loops: o.loops, Pool: o.pool, Outbound: o.outbound,
		Conns: o.conns, ConnectRate: o.connectRate, DurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(),
		Sizes: sizes, Pipeline: o.pipeline, Rate: o.rate, Verify: o.verify, Frame: o.frame,
		Reconnect: o.reconnect, Workers: o.workers, Repeat: o.repeat, Sources: o.sources,
	}
	if o.model != "" {
		bin, self, err := launch.FindBinary(o.serverBin)
		if err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			return exitUsage
		}
		rep.Settings.ServerBinary, rep.Settings.ServerSelf = bin, self
	}
	progress = progress || o.forceProgress

	var hists report.Hists
	for i := range o.repeat {
		c := &cell{opts: o, cfg: cfg, pins: pins, stderr: stderr, progress: progress, warn: warn}
		runRep, res, err := c.run(ctx, i)
		hists.Add(res)
		if c.addr != "" {
			rep.Settings.Addr = c.addr
			rep.Settings.Sources = sourcesFor(c.addr, o.sources) // what was used, not asked for
		}
		if c.pinnedThreads > 0 {
			rep.Env.Pinning.ServerThreadsPinned, rep.Env.Pinning.ServerThreads = c.pinnedThreads, c.threads
		}
		if runRep != nil {
			rep.Runs = append(rep.Runs, *runRep)
		}
		if err != nil {
			rep.Error = err.Error()
			break
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
	if o.out != "" {
		if err := writeJSON(o.out, rep); err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			status = exitFail
		}
	}
	rep.WriteTable(stdout)
	return status
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

// pinning is the CPUs chosen for each side; nil slices mean pinning is off.
type pinning struct {
	server, client []int
}

// setUpPinning decides the CPUs, pins echobench itself (before the engine starts, so every
// engine thread inherits the mask) and sets GOMAXPROCS to the client's CPU count.
func setUpPinning(o *options, rep *report.Report) (pinning, error) {
	p := &rep.Env.Pinning
	if !o.pin {
		p.Reason = "disabled by -pin=false"
		return pinning{}, nil
	}
	online, err := affinity.Online()
	if err != nil {
		p.Reason = err.Error()
		return pinning{}, nil
	}
	if len(online) < 2 {
		p.Reason = fmt.Sprintf("this machine lets echobench run on %d CPU; server and client would share it either way", len(online))
		return pinning{}, nil
	}
	serverCPUs, err := affinity.ParseList(o.serverCPUs)
	if err != nil {
		return pinning{}, fmt.Errorf("-server-cpus: %w", err)
	}
	clientCPUs, err := affinity.ParseList(o.clientCPUs)
	if err != nil {
		return pinning{}, fmt.Errorf("-client-cpus: %w", err)
	}
	allowed := map[int]bool{}
	for _, c := range online {
		allowed[c] = true
	}
	for _, c := range append(append([]int(nil), serverCPUs...), clientCPUs...) {
		if !allowed[c] {
			return pinning{}, fmt.Errorf("CPU %d is not one echobench may run on (allowed: %s); adjust -server-cpus/-client-cpus or pass -pin=false", c, affinity.Format(online))
		}
	}
	n, err := affinity.PinProcess(os.Getpid(), clientCPUs)
	if err != nil {
		return pinning{}, fmt.Errorf("pin echobench: %w", err)
	}
	runtime.GOMAXPROCS(len(clientCPUs))
	p.Enabled = true
	p.ClientCPUs = affinity.Format(clientCPUs)
	p.ClientThreadsPinned = n
	if o.model != "" {
		p.ServerCPUs = affinity.Format(serverCPUs)
	} else {
		// An external server is not ours to move.
		p.Reason = "server not pinned: it was started outside echobench (-addr)"
		serverCPUs = nil
	}
	return pinning{server: serverCPUs, client: clientCPUs}, nil
}
