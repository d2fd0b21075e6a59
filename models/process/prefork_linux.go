package process

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"echobench/server"
)

// prefork is the pool server: Config.Pool worker processes, started up front, each blocking in
// accept(2) on the one shared listening socket and serving one connection at a time. The
// parent never accepts; it supervises the workers and replaces any that die.
type prefork struct {
	server.Lifecycle
	server.Counters
	cfg      server.Config
	addr     net.Addr
	listener *os.File // the parent's copy of the shared listening socket, inherited by workers
	exe      string
	args     []string
	mu       sync.Mutex // guards workers, quickDeaths and listener against Close while a worker is spawned
	workers  map[*child]struct{}
	wg       sync.WaitGroup // the supervising goroutines, one per worker
	// quickDeaths counts the workers in a row that died younger than minWorkerLife; a worker
	// that lived longer resets it. maxQuickDeaths of them fail the server.
	quickDeaths int
}

func startPrefork(cfg server.Config, ln *net.TCPListener, exe string, args []string) (server.Server, error) {
	// The listener becomes a plain file for the workers to inherit. Its net.Listener is closed at
	// once: the parent never accepts, and the file is a dup of the same socket. Handing it to a
	// child puts the socket in blocking mode (os/exec calls File.Fd), which is what the workers'
	// blocking accept wants.
	listener, err := ln.File()
	addr := ln.Addr()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("process: listener file: %w", err)
	}
	s := &prefork{cfg: cfg, addr: addr, listener: listener, exe: exe, args: args, workers: map[*child]struct{}{}}
	for i := 0; i < cfg.Pool; i++ {
		if err := s.spawnWorker(); err != nil {
			s.Close()
			return nil, fmt.Errorf("process: start worker %d of %d: %w", i+1, cfg.Pool, err)
		}
	}
	return s, nil
}

func (s *prefork) Addr() net.Addr { return s.addr }

// Stats returns the counts so far. Bytes are counted as children report them: a live connection's
// bytes arrive in progress records (each second or 64 MiB of echoing, see progressEvery), so a
// mid-run snapshot lags by up to that much per connection; after Close the counts are exact.
func (s *prefork) Stats() server.Stats { return s.Snapshot() }

// spawnWorker starts one worker and its supervisor, unless the server is closing.
func (s *prefork) spawnWorker() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.IsClosing() {
		return nil
	}
	c, err := spawn(s.exe, s.args, s.listener)
	if err != nil {
		return err
	}
	s.workers[c] = struct{}{}
	s.wg.Add(1)
	go s.supervise(c)
	return nil
}

// supervise counts what a worker reports, one record when it accepts a connection and one when
// the connection ends, and replaces the worker when it dies.
func (s *prefork) supervise(c *child) {
	defer s.wg.Done()
	serving := false
	err := c.collect(func(r record) {
		switch r.kind {
		case recOpened:
			serving = true
			s.Opened()
		case recProgress: // bytes a live connection moved since its last report
			s.Read(int(r.in))
			s.Wrote(int(r.out))
		case recClosed: // the rest of the connection's bytes, and its end
			serving = false
			s.Read(int(r.in))
			s.Wrote(int(r.out))
			s.Closed()
		}
	})
	if serving {
		// The worker died mid-connection (crash, SIGKILL). The kernel closed the client's
		// socket with it; the bytes it moved died with it too, uncounted.
		s.Closed()
	}
	lived := time.Since(c.started)
	s.mu.Lock()
	delete(s.workers, c)
	if lived < minWorkerLife {
		s.quickDeaths++
	} else {
		s.quickDeaths = 0
	}
	quickDeaths := s.quickDeaths
	s.mu.Unlock()
	if s.IsClosing() {
		return
	}
	if quickDeaths >= maxQuickDeaths {
		// The teardown runs on its own goroutine: it waits for every supervisor, this one too.
		if s.Fail(fmt.Errorf("process: %d prefork workers in a row died within %v of starting; the last, pid %d, after %v: %v (its own message, if any, is on stderr)",
			quickDeaths, minWorkerLife, c.pid(), lived.Round(time.Millisecond), exitStatus(err))) {
			go s.shutdown()
		}
		return
	}
	s.cfg.Log("process: worker %d exited (%v); starting a replacement", c.pid(), exitStatus(err))
	if lived < minWorkerLife && !s.sleep(restartBackoff) {
		return
	}
	for {
		err := s.spawnWorker()
		if err == nil {
			return
		}
		s.cfg.Log("process: replace worker: %v", err)
		if !s.sleep(acceptBackoff) {
			return
		}
	}
}

// sleep waits d and reports whether the server is still running.
func (s *prefork) sleep(d time.Duration) bool {
	select {
	case <-s.Closing():
		return false
	case <-time.After(d):
		return true
	}
}

// workerPIDs lists the live workers, for tests.
func (s *prefork) workerPIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make([]int, 0, len(s.workers))
	for c := range s.workers {
		pids = append(pids, c.pid())
	}
	return pids
}

// Close closes the parent's copy of the listener, stops every worker and waits for them. New
// connections are refused once the last worker, holding the last copy, is gone.
func (s *prefork) Close() error {
	if s.BeginClose() {
		s.shutdown()
	}
	return s.Wait()
}

// shutdown tears the server down, once, for Close or for a pool whose workers cannot live.
func (s *prefork) shutdown() {
	s.mu.Lock() // after this no worker is spawned: spawnWorker checks IsClosing under mu
	s.listener.Close()
	workers := make([]*child, 0, len(s.workers))
	for c := range s.workers {
		workers = append(workers, c)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	terminate(workers, done)
	<-done
	s.Stopped()
}

// exitStatus describes how a worker ended: "exit status 1", "signal: killed", or "exited
// cleanly" for a nil error from Wait.
func exitStatus(err error) string {
	if err == nil {
		return "exited cleanly"
	}
	return err.Error()
}
