// Package serve is cmd/echoserver: it runs one model as its own process. It is a package rather
// than a main so that cmd/echobench can re-execute itself as the same server when it is not given
// an echoserver binary.
//
// Protocol with a parent process: the first line on stdout is the bound address (host:port) and
// nothing else. SIGUSR1 prints a line "stats {json}" with the server's own counters; SIGINT or
// SIGTERM stops accepting, closes every connection, prints a final stats line and exits 0.
package serve

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"echobench/server"
)

// Main runs the echo server with the given arguments (without the program name) and returns the
// process exit status: 0 after a clean stop, 1 when the server cannot start or fails, 2 for bad
// usage.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("echoserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "IO model to serve with (-list shows them)")
	addr := fs.String("addr", "127.0.0.1:0", "TCP address to listen on; port 0 picks a free one")
	loops := fs.Int("loops", 0, "event loops or threads, for models that have a fixed number (0 = GOMAXPROCS)")
	pool := fs.Int("pool", 0, "serve at most N connections at once, the rest wait in the backlog (blocking, process; 0 = one thread or process per connection)")
	outbound := fs.Int("outbound", 0, fmt.Sprintf("bytes buffered toward one client that does not read (0 = %d)", server.DefaultOutboundLimit))
	reuseport := fs.Bool("reuseport", false, "one SO_REUSEPORT listener per loop, for models that support it")
	lockthread := fs.Bool("lockthread", false, "lock each event loop to its own OS thread, for models that support it")
	list := fs.Bool("list", false, "list the models and exit")
	quiet := fs.Bool("quiet", false, "log nothing, not even resource warnings (EMFILE, select's fd ceiling)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: echoserver -model NAME [-addr 127.0.0.1:0] [flags]\n\nmodels: %v\n\nflags:\n", server.Names())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *list {
		for _, n := range server.Names() {
			m, _ := server.Lookup(n)
			status := ""
			if err := m.CheckAvailable(); err != nil {
				status = " (" + err.Error() + ")"
			}
			fmt.Fprintf(stdout, "%-12s %s%s\n", n, m.Summary, status)
		}
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "echoserver: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	m, err := server.Lookup(*model)
	if err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 2
	}
	if err := m.CheckAvailable(); err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 1
	}
	logger := log.New(stderr, "echoserver: ", log.LstdFlags)
	cfg := server.Config{
		Addr:          *addr,
		Loops:         *loops,
		Pool:          *pool,
		OutboundLimit: *outbound,
		ReusePort:     *reuseport,
		LockOSThread:  *lockthread,
		Logf:          logger.Printf,
	}
	if *quiet {
		cfg.Logf = func(string, ...any) {}
	}

	if n := raiseProcsTo(m, cfg, os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); n > 0 {
		cfg.Log("GOMAXPROCS %d -> %d, as model %s asks (see its package doc)", runtime.GOMAXPROCS(n), n, m.Name)
	}

	// Signals are caught before Start so that a parent which signals as soon as it reads the
	// address cannot kill us before the handler is in place.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	srv, err := m.Start(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "echoserver: %s is taken by another process; pick another -addr, or port 0 for a free one\n", *addr)
		}
		return 1
	}
	fmt.Fprintln(stdout, srv.Addr().String())
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}

	failed := make(chan error, 1)
	go func() { failed <- srv.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				printStats(stdout, srv.Stats())
				continue
			}
			// A second SIGINT or SIGTERM while Close waits (for threads or children to exit)
			// kills the process at once: the user asked twice.
			signal.Reset(syscall.SIGINT, syscall.SIGTERM)
			if err := srv.Close(); err != nil {
				fmt.Fprintf(stderr, "echoserver: close: %v\n", err)
				printStats(stdout, srv.Stats())
				return 1
			}
			printStats(stdout, srv.Stats())
			return 0
		case err := <-failed:
			if err != nil {
				fmt.Fprintf(stderr, "echoserver: model %s failed: %v\n", m.Name, err)
			}
			printStats(stdout, srv.Stats())
			return 1
		}
	}
}

// raiseProcsTo returns the GOMAXPROCS model m asks for with cfg (Model.Procs) if that is above
// the current one, or 0 to leave it: a GOMAXPROCS environment variable is the user's own choice
// and wins.
func raiseProcsTo(m server.Model, cfg server.Config, env string, current int) int {
	if m.Procs == nil || env != "" {
		return 0
	}
	if n := m.Procs(cfg); n > current {
		return n
	}
	return 0
}

func printStats(w io.Writer, s server.Stats) {
	b, _ := json.Marshal(s)
	fmt.Fprintf(w, "stats %s\n", b)
}
