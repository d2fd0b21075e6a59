package uring

import (
	"fmt"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// Test hooks, set before Start: the first two exercise the paths kernels older than 5.19 take,
// the next two the one of kernels before 6.17 (the second by having the kernel refuse the
// multishot recv, as such a kernel does), the last shrinks the provided-buffer pool so that recvs
// find it empty.
var (
	disableBufRing       bool   // receive into per-connection buffers instead of provided buffers
	disableMultishot     bool   // post one accept per connection
	disableMultishotRecv bool   // post one recv per arrival, into a provided buffer
	refuseMultishotRecv  bool   // post multishot recvs with a flag the kernel refuses
	poolBuffers          uint16 = bufCount
)

type srv struct {
	server.Lifecycle
	cfg     server.Config
	handler server.Handler // cfg's per-message cost, run inline on the loop that reaped the recv
	addr    net.Addr
	loops   []*loop
	wg      sync.WaitGroup

	// waker is the one eventfd every loop keeps a POLL_ADD on. Waking it once completes all
	// those polls, which is how Close reaches loops that are asleep in io_uring_enter.
	waker *sockutil.Waker
}

// start opens one SO_REUSEPORT listener per loop and starts the loops, each on its own OS thread.
func start(cfg server.Config) (server.Server, error) {
	if err := available(); err != nil {
		return nil, fmt.Errorf("uring: %w: %w", server.ErrUnavailable, err)
	}
	n := cfg.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	// One listener per loop (SO_REUSEPORT when there are several): the kernel spreads incoming
	// connections over the loops by a hash of their addresses, and no loop ever touches
	// another's connections. The listeners stay in blocking mode: io_uring never blocks a
	// thread on them (it polls internally), while on some kernels an O_NONBLOCK listener would
	// hand the accept EAGAIN instead of waiting.
	fds, addr, err := sockutil.ListenGroup(cfg.Addr, n, sockutil.ListenOptions{})
	if err != nil {
		return nil, fmt.Errorf("uring: %w", err)
	}
	waker, err := sockutil.NewWaker()
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("uring: %w", err)
	}

	s := &srv{cfg: cfg, handler: cfg.Handler(), addr: addr, waker: waker}
	ready := make(chan error, n)
	for i, fd := range fds {
		// From here the loop owns its listener and closes it on every path.
		l := &loop{s: s, id: i, listenFD: fd, pool: sockutil.NewPool(cfg.Outbound())}
		s.loops = append(s.loops, l)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run(ready)
		}()
	}
	var setupErr error
	for range n {
		if err := <-ready; err != nil && setupErr == nil {
			setupErr = err
		}
	}
	go func() {
		s.wg.Wait()
		s.waker.Close()
		s.Stopped()
	}()
	if setupErr != nil {
		s.Close()
		return nil, fmt.Errorf("uring: %w", setupErr)
	}
	return s, nil
}

func (s *srv) Addr() net.Addr { return s.addr }

func (s *srv) Stats() server.Stats {
	var st server.Stats
	for _, l := range s.loops {
		st = st.Add(l.Snapshot())
	}
	return st
}

// Close wakes every loop, which cancels its operations, reaps their completions and closes its
// fds and ring, then waits until every loop's thread has returned.
func (s *srv) Close() error {
	if s.BeginClose() {
		s.wake()
	}
	return s.Wait()
}

// fail stops the whole server after a loop hits an error it cannot serve through.
func (s *srv) fail(err error) {
	s.cfg.Log("%v", err)
	if s.Fail(err) {
		s.wake()
	}
}

func (s *srv) wake() {
	if err := s.waker.Wake(); err != nil {
		s.cfg.Log("uring: %v", err)
	}
}
