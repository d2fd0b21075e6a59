package child

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"echobench/internal/cmdline"
	"echobench/internal/reexec"
	"echobench/server"
)

// RoleServer is the reexec role in which a binary that links this package is an echoserver.
const RoleServer = "echoserver"

func init() {
	reexec.Register(RoleServer, func(args []string) int { return Main(args, os.Stdout, os.Stderr) })
}

// Main runs the echo server with the given arguments (without the program name) and returns the
// process exit status: 0 after a clean stop, 1 when the server cannot start or fails, 2 for bad
// usage.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("echoserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	model := fs.String("model", "", "IO model to serve with (-list shows them)")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "address to listen on (TCP, or UDP with -udp); port 0 picks a free one")
	cfg.RegisterFlags(fs)
	var limits FDLimits
	limits.register(fs)
	list := fs.Bool("list", false, "list the models and exit")
	quiet := fs.Bool("quiet", false, "log nothing, not even resource warnings (EMFILE, select's fd ceiling)")
	allowRemote := fs.Bool("allow-remote", false, "listen on an address that is not loopback (exposes an echo server to the network)")
	statsAddr := fs.String("stats-addr", "", "also serve GET /stats (the stats line's JSON) on this loopback host:port; port 0 picks a free one, printed on stderr (default: off)")
	usage := func() {
		fmt.Fprintf(stderr, "usage: echoserver -model NAME [-addr 127.0.0.1:0] [flags]\n\nmodels: %v\n\nflags:\n", server.Names())
		fs.PrintDefaults()
	}
	if err := cmdline.Parse(fs, args, stderr, usage); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *list {
		for _, n := range server.Names() {
			m, _ := server.Lookup(n)
			status := ""
			if m.StartUDP != nil {
				status = " [-udp too]"
			}
			if err := m.CheckAvailable(); err != nil {
				status = " (" + err.Error() + ")"
			}
			fmt.Fprintf(stdout, "%-12s %s%s\n", n, m.Summary, status)
		}
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "echoserver: unexpected argument %q; flags come before it, and -h lists them\n", fs.Arg(0))
		return 2
	}
	m, err := server.Lookup(*model)
	if err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 2
	}
	if !isLoopback(cfg.Addr) {
		if !*allowRemote {
			fmt.Fprintf(stderr, "echoserver: -addr %s is not a loopback address; an echo server open to a network is an abuse vector (UDP echo reflection above all): listen on 127.0.0.1 or ::1, or pass -allow-remote to accept that\n", cfg.Addr)
			return 2
		}
		fmt.Fprintf(stderr, "echoserver: warning: listening on %s, which is not loopback: anyone who can reach it can use this echo server\n", cfg.Addr)
	}
	var statsLn net.Listener
	if *statsAddr != "" {
		// Bound before the server starts, so a bad or taken stats address fails before any
		// client can connect.
		var err error
		if statsLn, err = listenStats(*statsAddr); err != nil {
			fmt.Fprintf(stderr, "echoserver: %v\n", err)
			return 2
		}
		defer statsLn.Close() // for the returns before the port serves; closing twice is harmless
	}
	if err := m.CheckAvailable(); err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 1
	}
	logger := log.New(stderr, "echoserver: ", log.LstdFlags)
	cfg.Logf = logger.Printf
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

	if err := limits.beforeStart(); err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 1
	}
	srv, err := m.Launch(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "echoserver: %s is taken by another process; pick another -addr, or port 0 for a free one\n", cfg.Addr)
		}
		return 1
	}
	if err := limits.afterStart(); err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		srv.Close()
		return 1
	}
	self := newSelfAccount()
	snapshot := func() Snapshot { return self.snapshot(srv) }
	if statsLn != nil {
		port := serveStats(statsLn, snapshot)
		defer port.close()
		// stderr, not stdout: the address line must stay stdout's first (the child protocol).
		fmt.Fprintf(stderr, "echoserver: stats on %s\n", statsLn.Addr())
	}
	writeAddr(stdout, srv.Addr())
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}

	failed := make(chan error, 1)
	go func() { failed <- srv.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				writeStats(stdout, snapshot())
				continue
			}
			// A second SIGINT or SIGTERM while Close waits (for threads or children to exit)
			// kills the process at once: the user asked twice.
			signal.Reset(syscall.SIGINT, syscall.SIGTERM)
			if err := srv.Close(); err != nil {
				fmt.Fprintf(stderr, "echoserver: close: %v\n", err)
				writeStats(stdout, snapshot())
				return 1
			}
			writeStats(stdout, snapshot())
			return 0
		case err := <-failed:
			if err != nil {
				fmt.Fprintf(stderr, "echoserver: model %s failed: %v\n", m.Name, err)
			}
			writeStats(stdout, snapshot())
			return 1
		}
	}
}

// isLoopback reports whether addr's host is a loopback address (127.0.0.0/8, ::1, or a name that
// resolves only to such addresses, like localhost). An empty host or an unspecified address
// (0.0.0.0, ::) listens on every interface, so it is not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
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
