package epoll

import (
	"fmt"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// srv is a running epoll server: its listener(s), its loops, and its stop bookkeeping. Each loop
// closes its own connections as it leaves; the server closes the listeners and the loops' epoll
// fds and wakers once every loop has left.
type srv struct {
	server.Lifecycle
	cfg       server.Config
	handler   server.Handler // cfg's per-message cost, run inline on the loop that read it
	addr      net.Addr
	listeners []int // one shared listener, or one SO_REUSEPORT listener per loop
	loops     []*loop
	running   sync.WaitGroup
}

// Start listens on cfg.Addr and starts cfg.Loops event loops (default GOMAXPROCS).
func Start(cfg server.Config) (server.Server, error) {
	nloops := cfg.Loops
	if nloops <= 0 {
		nloops = runtime.GOMAXPROCS(0)
	}
	nlisteners := 1
	if cfg.ReusePort {
		nlisteners = nloops
	}
	listeners, addr, err := sockutil.ListenGroup(cfg.Addr, nlisteners, sockutil.ListenOptions{Nonblocking: true, ReusePort: cfg.ReusePort})
	if err != nil {
		return nil, fmt.Errorf("epoll: listen on %s: %w", cfg.Addr, err)
	}
	s := &srv{cfg: cfg, handler: cfg.Handler(), addr: addr, listeners: listeners}
	for i := range nloops {
		l, err := newLoop(s, listeners[i%len(listeners)])
		if err != nil {
			s.closeFDs()
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	for _, l := range s.loops {
		s.running.Add(1)
		go l.run()
	}
	go func() {
		s.running.Wait()
		s.closeFDs()
		s.Stopped()
	}()
	return s, nil
}

func (s *srv) Addr() net.Addr { return s.addr }

// Stats adds up the loops' counters.
func (s *srv) Stats() server.Stats {
	var total server.Stats
	for _, l := range s.loops {
		total = total.Add(l.counts.Snapshot())
	}
	return total
}

// Close wakes every loop; each closes its connections and returns, and once all have, the
// listeners, epoll fds and wakers are closed and Wait returns.
func (s *srv) Close() error {
	if s.BeginClose() {
		s.wakeAll()
	}
	return s.Wait()
}

// fail stops the server after a loop hit an error it cannot serve past.
func (s *srv) fail(err error) {
	if s.Fail(err) {
		s.wakeAll()
	}
}

func (s *srv) wakeAll() {
	for _, l := range s.loops {
		if err := l.waker.Wake(); err != nil {
			s.cfg.Log("epoll: waking a loop: %v", err)
		}
	}
}

// closeFDs closes what the server owns, once no loop runs (or none was started).
func (s *srv) closeFDs() {
	for _, l := range s.loops {
		l.close()
	}
	for _, fd := range s.listeners {
		unix.Close(fd)
	}
}
