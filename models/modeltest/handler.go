package modeltest

import (
	"net"
	"syscall"
	"testing"
	"time"

	"echobench/internal/procstat"
	"echobench/server"
)

// HandlerOptions tune CheckHandler for a model.
type HandlerOptions struct {
	// Config is the base configuration; CheckHandler sets Work and Block itself.
	Config server.Config
	// OneLoop says the model, with Config, serves every connection from one thread, so that a
	// handler running for one connection holds back every other: an event loop with Loops 1.
	OneLoop bool
}

// The per-message costs CheckHandler asks for. They are long beside a loopback round trip, so
// that what the checks bound is the handler and not the network, and short, so that the checks
// of every model together take a few seconds.
const (
	checkBlock = 30 * time.Millisecond
	checkWork  = 20 * time.Millisecond
	// workMessages is how many messages the Work check sends one after another.
	workMessages = 10
)

// The Work check wants the handler to add at least 1/workShare of its hashing time to the
// server's CPU time. Handle hashes until Work has passed on the clock, so it adds all of Work only
// while its thread runs throughout; on a loaded two-core machine it may run half that time or
// less. A quarter still tells hashing from sleeping, which adds next to nothing, with room for
// the baseline's own noise.
const workShare = 4

// CheckHandler checks that the model runs Config.Work and Config.Block for every message before it
// echoes it: with Block, a round trip takes at least Block and echoes exactly; with Work, likewise,
// and the server's CPU time (this process's, plus that of the children it reaped, for a model that
// serves from child processes) grows by a good share of the work done beyond what the same
// exchange costs without a handler; with OneLoop, two messages sent together on two connections
// are both back only after two handlers' time, because the loop ran one handler after the other.
// Every bound is a lower bound the code guarantees: how much longer a loaded machine takes is not
// checked.
func CheckHandler(t *testing.T, model string, opts HandlerOptions) {
	base := Options{Config: opts.Config}.config()
	t.Run("Block", func(t *testing.T) {
		cfg := base
		cfg.Block = checkBlock
		srv := Start(t, model, cfg)
		c := dialHandler(t, srv)
		for i, size := range []int{1, 100, 1500} {
			if took := timedEcho(t, c, i, size); took < checkBlock {
				t.Errorf("round trip of %d bytes took %v with -block %v: the echo did not wait for the handler", size, took, checkBlock)
			}
		}
	})
	t.Run("Work", func(t *testing.T) {
		// The same exchange without a handler is the baseline: what serving it costs anyway,
		// which for a model of child processes is mostly their runtimes starting.
		idle := workExchange(t, model, base)
		cfg := base
		cfg.Work = checkWork
		used := workExchange(t, model, cfg)
		work := workMessages * checkWork
		t.Logf("%d messages: the server used %v of CPU with -work %v, %v without", workMessages, used, checkWork, idle)
		if used-idle < work/workShare {
			t.Errorf("-work %v for %d messages (%v of hashing) added %v to the server's CPU time (%v with it, %v without): want at least %v",
				checkWork, workMessages, work, used-idle, used, idle, work/workShare)
		}
	})
	if opts.OneLoop {
		t.Run("BlockStallsLoop", func(t *testing.T) {
			cfg := base
			cfg.Block = checkBlock
			srv := Start(t, model, cfg)
			first, second := dialHandler(t, srv), dialHandler(t, srv)
			// The second message is sent while the first is still in its handler (an echo
			// needs Block), so one loop runs the two handlers one after the other, whichever
			// it reads first, and sends the later echo no sooner than 2×Block after start.
			msg := make([]byte, 64)
			start := time.Now()
			for id, c := range []net.Conn{first, second} {
				Pattern(msg, id, 0)
				if _, err := c.Write(msg); err != nil {
					t.Fatalf("conn %d: write: %v", id, err)
				}
			}
			for id, c := range []net.Conn{first, second} {
				if err := ReadVerify(c, id, 0, len(msg)); err != nil {
					t.Fatal(err)
				}
			}
			if took := time.Since(start); took < 2*checkBlock {
				t.Errorf("two messages on two connections were both echoed %v after the first was sent, with -block %v on one loop: want at least %v, one handler after the other", took, checkBlock, 2*checkBlock)
			}
		})
	}
}

// workExchange starts the model with cfg, sends workMessages messages one after another on one
// connection, each echoed no sooner than cfg.Work after it was sent, closes the server, and returns
// the CPU time all that took.
func workExchange(t *testing.T, model string, cfg server.Config) time.Duration {
	t.Helper()
	before := serverCPU(t)
	srv := Start(t, model, cfg)
	c := dialHandler(t, srv)
	for i := range workMessages {
		if took := timedEcho(t, c, i, 64); took < cfg.Work {
			t.Errorf("round trip took %v with -work %v: the echo did not wait for the handler", took, cfg.Work)
		}
	}
	c.Close()
	// Close reaps every child process, so their CPU time is in RUSAGE_CHILDREN now.
	if err := srv.Close(); err != nil {
		t.Fatalf("close %s: %v", model, err)
	}
	return serverCPU(t) - before
}

// dialHandler connects to srv, and closes the connection when the test ends.
func dialHandler(t *testing.T, srv server.Server) *net.TCPConn {
	t.Helper()
	c, err := Dial(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// timedEcho sends one message of size pattern bytes for client id and reads its echo, verified,
// and returns how long that took. The client writes it in one write, so the server's first read
// of it is after the clock started, and its echo cannot have come back before the handler ran.
func timedEcho(t *testing.T, c net.Conn, id, size int) time.Duration {
	t.Helper()
	msg := make([]byte, size)
	Pattern(msg, id, 0)
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write %d bytes: %v", size, err)
	}
	if err := ReadVerify(c, id, 0, size); err != nil {
		t.Fatalf("echo of %d bytes: %v", size, err)
	}
	return time.Since(start)
}

// serverCPU is the user and system CPU time of this process and of every child it has reaped:
// an in-process server's time is in the first, a child-process server's in the second once its
// children have exited.
func serverCPU(t *testing.T) time.Duration {
	t.Helper()
	self, err := procstat.Self()
	if err != nil {
		t.Fatal(err)
	}
	var children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		t.Fatalf("getrusage children: %v", err)
	}
	return self.CPU() + procstat.FromRusage(&children).CPU()
}
