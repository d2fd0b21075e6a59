//go:build !poll_opt

package async

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// minOutbound is the smallest outbound limit this model can keep: gnet rounds any smaller read
// buffer up to 1 KiB (ring.DefaultBufferSize), and one read's worth is what may be queued.
const minOutbound = 1 << 10

// stopTimeout bounds how long Close waits for gnet.Run to return. Stopping takes one trip through
// every loop; a loop that has not stopped by then is stuck in a handler.
const stopTimeout = 30 * time.Second

// fdHeadroom is how many fd numbers below RLIMIT_NOFILE, beyond one per loop, OnOpen keeps free
// of connections, for everything else the process opens: each loop's epoll fd and eventfd, the Go
// runtime's poller, stdio, a log file. gnet stops the whole engine when accept(2) fails with
// EMFILE, so the model must keep accept from getting there. With SO_REUSEPORT, which this model
// always uses, each loop accepts one connection and runs OnOpen before it accepts the next, so one
// fd per loop covers the connections accepted but not yet checked. (Without it gnet's one accepting
// goroutine would drain the whole backlog into the loops' queues ahead of OnOpen, and no fixed
// headroom covers a burst.)
const fdHeadroom = 64

// tickerDelay is how often gnet calls OnTick after the first call. We use only the first call, as
// the sign that the loops are running; an hour keeps the ticker goroutine asleep otherwise.
const tickerDelay = time.Hour

type srv struct {
	gnet.BuiltinEventEngine
	server.Lifecycle
	server.Counters

	cfg     server.Config
	handler server.Handler // cfg's per-message cost, run inline in OnTraffic on the loop
	addr    net.Addr
	engine  gnet.Engine
	fdCeil  int // OnOpen rejects a connection whose fd number is this or higher

	// booted is closed by the first OnTick, once gnet has created and started every loop.
	booted     chan struct{}
	bootedOnce sync.Once
	bootErr    error // set by OnBoot before it asks gnet to shut down

	// ran is closed when gnet.Run has returned: every loop goroutine has exited and every
	// connection, listener, epoll and eventfd gnet opened is closed.
	ran chan struct{}

	// stopped is set once gnet.Run has returned. gnet keeps our logger as its process-wide default
	// until another engine starts, so a later package-level log line could otherwise reach the
	// cfg.Logf of a server that is gone, such as a finished test's t.Logf, which panics.
	stopped atomic.Bool

	mu       sync.Mutex
	firstErr string // gnet's first error-level log line, to explain a stop we did not ask for
}

// rejected marks, as a connection's gnet context, one that OnOpen refused, so that OnClose does
// not count it as a served connection closing.
type rejected struct{}

// connState is a served connection's gnet context. queued is how many bytes of its echoes were in
// gnet's outbound buffer when they were last counted: handed to gnet, not yet written, so not yet
// in BytesOut. It is at most one read's worth, because reading stops while anything is queued.
type connState struct {
	queued int
}

// Start binds cfg.Addr through gnet and returns once gnet's event loops are running.
func Start(cfg server.Config) (server.Server, error) {
	if err := checkGnetLayout(); err != nil {
		return nil, err
	}
	limit := cfg.Outbound()
	if limit < minOutbound {
		return nil, fmt.Errorf("async: outbound limit %d is below %d, the smallest read gnet makes; use -outbound %d or more", limit, minOutbound, minOutbound)
	}
	loops := cfg.Loops
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		return nil, fmt.Errorf("async: getrlimit RLIMIT_NOFILE: %w", err)
	}
	fdCeil := int(min(nofile.Cur, 1<<30))
	fdCeil -= min(fdHeadroom+loops, fdCeil/2)

	// Every loop gets its own SO_REUSEPORT listener whatever cfg.ReusePort says: -reuseport is
	// implied. With one shared listener, gnet's single accepting goroutine drains the whole backlog
	// before any OnOpen can check an fd, so a flood of connections reaches EMFILE at accept(2), and
	// gnet then stops the whole engine. Per-loop listeners make each loop accept one connection and
	// run OnOpen before it accepts the next. gnet opens them by binding the address string once per
	// loop, so with port 0 every loop would get a different port: reserve one port first.
	listenAddr, reserved, err := reservePort(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if reserved < 0 && !cfg.ReusePort {
		// A fixed port: SO_REUSEPORT would let this server silently share it with another
		// process of ours that set it too (a stale echoserver, say), splitting the clients
		// between them. Unless sharing was asked for, check first that the port is free.
		if err := checkPortFree(listenAddr); err != nil {
			return nil, err
		}
	}

	s := &srv{cfg: cfg, handler: cfg.Handler(), fdCeil: fdCeil}
	s.booted, s.ran = make(chan struct{}), make(chan struct{})
	opts := []gnet.Option{
		gnet.WithNumEventLoop(loops),
		gnet.WithReusePort(true),
		gnet.WithLockOSThread(cfg.LockOSThread),
		gnet.WithReadBufferCap(readBufferCap(limit)),
		// gnet's default, spelled out: every model sets it (see sockutil.SetNoDelay).
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{s}),
	}
	go func() {
		err := gnet.Run(s, "tcp://"+listenAddr, opts...)
		s.stopped.Store(true)
		if err != nil {
			s.Fail(fmt.Errorf("async: gnet on %s: %w", cfg.Addr, err))
		} else if s.BeginClose() {
			// Run returned although Close did not ask it to: gnet stopped the engine itself,
			// which it does when accept(2) fails with anything but EAGAIN/EINTR/ECONNABORTED.
			s.Fail(fmt.Errorf("async: gnet stopped the engine on its own: %s", s.firstError()))
		}
		close(s.ran)
		s.Stopped()
	}()

	select {
	case <-s.booted:
	case <-s.ran:
	}
	if reserved >= 0 {
		unix.Close(reserved) // the loops' listeners now hold the port
	}
	select {
	case <-s.ran:
		err := s.Wait()
		if s.bootErr != nil {
			err = s.bootErr
		}
		if err == nil {
			err = errors.New("async: gnet returned before its event loops started")
		}
		return nil, err
	default:
	}
	return s, nil
}

// readBufferCap is the read size for an outbound limit, sockutil.ReadBuffer's rule rounded down to
// a power of two (gnet's read buffer is a ring of that size): gnet queues at most the unsent part
// of one read (see OnTraffic), so a read no larger than the limit keeps the queue within it. gnet
// rounds the size up to a power of two, so it is rounded down here first. The loop reads into one
// such buffer shared by all its connections, so it costs one per loop, not per connection.
func readBufferCap(limit int) int {
	n := minOutbound
	for n*2 <= sockutil.ReadBuffer(limit) {
		n *= 2
	}
	return n
}

func (s *srv) Addr() net.Addr { return s.addr }

func (s *srv) Stats() server.Stats { return s.Snapshot() }

// OnBoot runs in gnet.Run after the listener is bound, before the loops exist. gnet has no
// accessor for the bound address, so it is read from a duplicate of the listening fd.
func (s *srv) OnBoot(eng gnet.Engine) gnet.Action {
	s.engine = eng
	fd, err := eng.Dup()
	if err != nil {
		s.bootErr = fmt.Errorf("async: dup gnet's listener: %w", err)
		return gnet.Shutdown
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		s.bootErr = fmt.Errorf("async: getsockname fd %d: %w", fd, err)
		return gnet.Shutdown
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		s.addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		s.addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	default:
		s.bootErr = fmt.Errorf("async: listener fd %d bound to %T, want a TCP address", fd, sa)
		return gnet.Shutdown
	}
	return gnet.None
}

// OnTick is first called right after gnet has started every loop. gnet has no "started" event,
// and OnBoot comes too early: starting the loops can still fail after it.
func (s *srv) OnTick() (time.Duration, gnet.Action) {
	s.bootedOnce.Do(func() { close(s.booted) })
	return tickerDelay, gnet.None
}

// Close asks gnet to stop and returns once gnet.Run has returned, or after stopTimeout. gnet stops
// by sending a task to every loop; each loop closes its connections and returns; then gnet closes
// the listeners and each loop's epoll fd and eventfd, and Run returns.
//
// Engine.Stop first triggers that shutdown, then polls every 500 ms until it is done, returning
// early only when its context ends. Given an already cancelled context it triggers the shutdown
// and returns context.Canceled without sleeping; Close waits for gnet.Run itself instead.
func (s *srv) Close() error {
	if s.BeginClose() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.engine.Stop(ctx)
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, gerrors.ErrEngineInShutdown) {
			s.cfg.Log("async: stop gnet engine: %v", err)
		}
	}
	select {
	case <-s.ran:
		return s.Wait()
	case <-time.After(stopTimeout):
		// The caller may be gone before gnet is: keep gnet's late log lines from reaching it.
		s.stopped.Store(true)
		return fmt.Errorf("async: gnet's event loops did not stop within %v: a handler is stuck; Wait returns once they do", stopTimeout)
	}
}

// noteError keeps gnet's first error line: when the engine stops by itself, gnet logs the cause
// first and then the same error again at each level it passes through.
func (s *srv) noteError(msg string) {
	s.mu.Lock()
	if s.firstErr == "" {
		s.firstErr = msg
	}
	s.mu.Unlock()
}

func (s *srv) firstError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstErr == "" {
		return "no error was logged"
	}
	return s.firstErr
}

// reservePort returns addr with a concrete port and a bound, not listening, SO_REUSEPORT socket
// that holds that port until gnet's per-loop listeners have bound it too. A socket that does not
// listen takes no connections, so it never steals any from the loops.
func reservePort(addr string) (string, int, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", -1, fmt.Errorf("async: listen address %q: %w", addr, err)
	}
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return "", -1, fmt.Errorf("async: resolve %s: %w", addr, err)
	}
	if tcp.Port != 0 {
		return addr, -1, nil
	}
	family := unix.AF_INET
	var sa unix.Sockaddr
	if ip4 := tcp.IP.To4(); ip4 != nil || tcp.IP == nil {
		sa4 := &unix.SockaddrInet4{}
		copy(sa4.Addr[:], ip4) // a nil IP leaves the wildcard address 0.0.0.0
		sa = sa4
	} else {
		family = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{}
		copy(sa6.Addr[:], tcp.IP.To16())
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", -1, fmt.Errorf("async: socket to reserve a port on %s: %w", addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		unix.Close(fd)
		return "", -1, fmt.Errorf("async: setsockopt SO_REUSEPORT fd %d: %w", fd, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return "", -1, fmt.Errorf("async: bind %s to reserve a port: %w", addr, err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return "", -1, fmt.Errorf("async: getsockname fd %d: %w", fd, err)
	}
	var port int
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		port = b.Port
	case *unix.SockaddrInet6:
		port = b.Port
	}
	return net.JoinHostPort(host, fmt.Sprint(port)), fd, nil
}

// gnetLogger routes gnet's log lines to cfg.Log. gnet logs "launching" at info level on every
// start and chatters at debug level; those are dropped. gnet also installs the logger as its
// process-wide default, so with several servers in one process a line may reach another's Logf;
// once the server's engine has returned, the logger drops every line.
type gnetLogger struct{ s *srv }

func (gnetLogger) Debugf(string, ...any) {}
func (gnetLogger) Infof(string, ...any)  {}
func (l gnetLogger) Warnf(format string, args ...any) {
	if l.s.stopped.Load() {
		return
	}
	l.s.cfg.Log("async: gnet: "+format, args...)
}
func (l gnetLogger) Errorf(format string, args ...any) {
	if l.s.stopped.Load() {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.s.noteError(msg)
	l.s.cfg.Log("async: gnet: %s", msg)
}
func (l gnetLogger) Fatalf(format string, args ...any) { l.Errorf(format, args...) }

// checkPortFree binds addr once without SO_REUSEPORT and lets it go again: EADDRINUSE then means
// another socket holds the port, which the per-loop SO_REUSEPORT listeners would otherwise join.
func checkPortFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("async: listen on %s: %w", addr, err)
	}
	return ln.Close()
}
