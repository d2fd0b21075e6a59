package stdnet

import (
	"fmt"
	"net"
	"sync"

	"echobench/server"
)

type srv struct {
	server.Lifecycle
	server.Counters
	cfg     server.Config
	handler server.Handler // cfg's per-message cost, run in the connection's goroutine
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
}

// Start listens on cfg.Addr and serves each connection in its own goroutine.
func Start(cfg server.Config) (server.Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("stdnet: listen on %s: %w", cfg.Addr, err)
	}
	s := &srv{cfg: cfg, handler: cfg.Handler(), ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	go func() {
		s.wg.Wait()
		s.Stopped()
	}()
	return s, nil
}

func (s *srv) Addr() net.Addr { return s.ln.Addr() }

func (s *srv) Stats() server.Stats { return s.Snapshot() }

// Close stops the listener, closes every connection (which wakes their goroutines out of Read
// or Write) and waits for all goroutines to return.
func (s *srv) Close() error {
	if s.BeginClose() {
		s.ln.Close()
		s.closeConns()
	}
	return s.Wait()
}

// closeConns closes every connection, which wakes its goroutine out of Read or Write.
func (s *srv) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}
