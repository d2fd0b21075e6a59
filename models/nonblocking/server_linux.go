package nonblocking

import (
	"fmt"
	"net"
	"time"

	"echobench/internal/sockutil"
	"echobench/server"
)

type srv struct {
	server.Lifecycle
	server.Counters
	cfg     server.Config
	handler server.Handler // cfg's per-message cost, run inline on the loop's thread
	lfd     int
	addr    *net.TCPAddr

	// Everything below belongs to the loop's thread alone, so none of it is locked.
	readBuf       []byte
	pool          *sockutil.Pool
	conns         []*conn
	acceptTrouble sockutil.LogBurst
	// progressed records that the current pass accepted, read or wrote something (or closed a
	// connection); a pass that did none of these is idle, and with cfg.PollSleep the loop
	// sleeps after it.
	progressed bool
	idleTimer  *time.Timer // nil unless cfg.PollSleep > 0
}

// conn is one client. Its outbound (the w_list of the classic busy-poll server) holds the
// echoed bytes the client's socket would not take yet: a send can fail with EAGAIN as surely as a
// read, and the loop cannot wait for it.
type conn struct {
	fd         int
	outbound   sockutil.Outbound
	readClosed bool // the client shut down its sending side: flush, then close
}

// Start listens on cfg.Addr and serves every connection from one busy-polling thread.
func Start(cfg server.Config) (server.Server, error) {
	lfd, addr, err := sockutil.Listen(cfg.Addr, sockutil.ListenOptions{Nonblocking: true})
	if err != nil {
		return nil, fmt.Errorf("nonblocking: %w", err)
	}
	s := &srv{
		cfg:     cfg,
		handler: cfg.Handler(),
		lfd:     lfd,
		addr:    addr,
		readBuf: make([]byte, sockutil.ReadBuffer(cfg.Outbound())),
		pool:    sockutil.NewPool(cfg.Outbound()),
	}
	if cfg.PollSleep > 0 {
		s.idleTimer = time.NewTimer(cfg.PollSleep)
		s.idleTimer.Stop()
	}
	go s.run()
	return s, nil
}

func (s *srv) Addr() net.Addr { return s.addr }

func (s *srv) Stats() server.Stats { return s.Snapshot() }

// Close asks the loop to stop and returns once it has closed every fd and exited.
func (s *srv) Close() error {
	s.BeginClose()
	return s.Wait()
}
