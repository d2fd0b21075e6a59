// Package modeltest is the conformance suite every echobench model runs from its own tests, plus
// the client helpers those tests share.
//
// Run checks what the server contract promises, on real loopback sockets: exact echo from 1 byte to
// 4 MiB (large enough to force partial writes on the server), many concurrent connections with
// interleaved writes, a client that writes a burst before it reads, a client that never reads
// (backpressure: it must not stall the others, and the server holds no more than the outbound limit
// for it), TCP_NODELAY on the server's end of every connection, half-close, reset mid-transfer,
// counters that match the traffic, and a Close that leaves no goroutine or file descriptor behind.
package modeltest

import (
	"testing"
	"time"

	"echobench/server"
)

// Options tune the suite for a model.
type Options struct {
	// Config is the base configuration. Addr defaults to 127.0.0.1:0 and OutboundLimit to
	// TestOutboundLimit.
	Config server.Config
	// Conns is the number of concurrent connections in the concurrency check; default 200.
	Conns int
}

// TestOutboundLimit is the outbound limit the suite runs with unless told otherwise: small, so
// that the backpressure path is exercised by ordinary transfers, and large enough that a single
// echoed message never needs more.
const TestOutboundLimit = 256 << 10

// ioTimeout bounds every client exchange (Dial sets it, Echo and ReadVerify renew it), so a broken
// model fails a test instead of hanging it. It is generous because -race on a loaded two-core
// machine is slow.
const ioTimeout = 60 * time.Second

func (o Options) config() server.Config {
	c := o.Config
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.OutboundLimit == 0 {
		c.OutboundLimit = TestOutboundLimit
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// Run runs the conformance suite against the named model.
func Run(t *testing.T, model string, opts Options) {
	m, err := server.Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckAvailable(); err != nil {
		t.Skip(err)
	}
	cfg := opts.config()
	conns := opts.Conns
	if conns == 0 {
		conns = 200
	}

	// The leak check runs first, on a server of its own, so that the baseline it takes is not
	// disturbed by connections other subtests are still tearing down.
	t.Run("CloseLeavesNothing", func(t *testing.T) { testClose(t, m, cfg) })

	// These share one server, closed when the group ends, so that no two servers of a heavy
	// model (a prefork pool of processes) are alive at once.
	t.Run("Shared", func(t *testing.T) {
		srv := Start(t, model, cfg)
		addr := srv.Addr().String()
		t.Run("Echo", func(t *testing.T) { testEcho(t, addr) })
		t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, addr, conns) })
		t.Run("WriteBeforeRead", func(t *testing.T) { testWriteBeforeRead(t, addr, cfg.Outbound()) })
		t.Run("SlowReaderDoesNotStall", func(t *testing.T) { testSlowReader(t, srv, cfg.Outbound()) })
		t.Run("NoDelay", func(t *testing.T) { testNoDelay(t, addr) })
		t.Run("HalfClose", func(t *testing.T) { testHalfClose(t, addr) })
		t.Run("HalfCloseWithQueuedEchoes", func(t *testing.T) { testHalfCloseQueued(t, addr) })
		t.Run("ResetMidTransfer", func(t *testing.T) { testReset(t, addr) })
	})
	t.Run("Stats", func(t *testing.T) { testStats(t, m, cfg) })
}

// Start starts the named model and closes it when the test ends.
func Start(t testing.TB, model string, cfg server.Config) server.Server {
	t.Helper()
	m, err := server.Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckAvailable(); err != nil {
		t.Skip(err)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	srv, err := m.Launch(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", model, err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close %s: %v", model, err)
		}
	})
	return srv
}
