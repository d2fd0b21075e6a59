package uring

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"echobench/server"
)

// listenBacklog is the accept queue of each listener. The kernel caps it at net.core.somaxconn;
// a deep queue lets a burst of thousands of connects wait while a loop is busy, or while accept
// backs off after EMFILE.
const listenBacklog = 4096

// Test hooks, set before Start: the first two exercise the paths kernels older than 5.19 take,
// the third shrinks the provided-buffer pool so that recvs find it empty.
var (
	disableBufRing   bool   // receive into per-connection buffers instead of provided buffers
	disableMultishot bool   // post one accept per connection
	poolBuffers      uint16 = bufCount
)

var (
	probeOnce sync.Once
	probeErr  error
)

// available probes io_uring once per process by setting up a tiny ring.
func available() error {
	probeOnce.Do(func() { probeErr = probe() })
	return probeErr
}

type srv struct {
	server.Lifecycle
	cfg   server.Config
	addr  net.Addr
	loops []*loop
	wg    sync.WaitGroup

	// wakeFD is an eventfd every loop keeps a POLL_ADD on. Writing it once completes all those
	// polls, which is how Close reaches loops that are asleep in io_uring_enter. wakeMu keeps a
	// late write from hitting the fd after it is closed (and its number reused).
	wakeFD     int
	wakeMu     sync.Mutex
	wakeClosed bool
}

// start opens one SO_REUSEPORT listener per loop and starts the loops, each on its own OS thread.
func start(cfg server.Config) (server.Server, error) {
	if err := available(); err != nil {
		return nil, fmt.Errorf("uring: %w: %v", server.ErrUnavailable, err)
	}
	n := cfg.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	family, sa, err := resolve(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("uring: %w", err)
	}
	// With one listener per loop, the kernel spreads incoming connections over the loops by a
	// hash of their addresses, and no loop ever touches another's connections.
	var fds []int
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	for i := 0; i < n; i++ {
		fd, err := listen(family, sa, n > 1)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("uring: listener %d of %d on %s: %w", i+1, n, cfg.Addr, err)
		}
		fds = append(fds, fd)
		if i == 0 {
			// The others join the first one's port, which the kernel chose if it was 0.
			if sa, err = unix.Getsockname(fd); err != nil {
				closeAll()
				return nil, fmt.Errorf("uring: getsockname fd %d: %w", fd, err)
			}
		}
	}
	wakeFD, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("uring: eventfd: %w", err)
	}

	s := &srv{cfg: cfg, addr: tcpAddr(sa), wakeFD: wakeFD}
	ready := make(chan error, n)
	for i, fd := range fds {
		// From here the loop owns its listener and closes it on every path.
		l := &loop{s: s, id: i, listenFD: fd, limit: cfg.Outbound()}
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
		s.wakeMu.Lock()
		unix.Close(s.wakeFD)
		s.wakeClosed = true
		s.wakeMu.Unlock()
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
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.wakeClosed {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(s.wakeFD, one[:]); err != nil {
		// Only a counter overflow fails, and then the eventfd is readable anyway.
		s.cfg.Log("uring: write eventfd %d: %v", s.wakeFD, err)
	}
}

// listen opens a listening TCP socket. It stays in blocking mode: io_uring never blocks a thread
// on it (it polls internally), while on some kernels an O_NONBLOCK socket would hand us EAGAIN
// instead of waiting.
func listen(family int, sa unix.Sockaddr, reusePort bool) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	// SO_REUSEADDR, as Go's net.Listen sets it, lets a restarted server bind while connections
	// of its predecessor linger in TIME_WAIT.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("setsockopt SO_REUSEADDR fd %d: %w", fd, err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt SO_REUSEPORT fd %d: %w", fd, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind fd %d: %w", fd, err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen fd %d: %w", fd, err)
	}
	return fd, nil
}

// resolve turns "host:port" into a socket address. An empty host means every IPv4 address.
func resolve(addr string) (int, unix.Sockaddr, error) {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return 0, nil, fmt.Errorf("resolve %q: %w", addr, err)
	}
	if a.IP == nil || a.IP.To4() != nil {
		sa := &unix.SockaddrInet4{Port: a.Port}
		if a.IP != nil {
			copy(sa.Addr[:], a.IP.To4())
		}
		return unix.AF_INET, sa, nil
	}
	sa := &unix.SockaddrInet6{Port: a.Port}
	copy(sa.Addr[:], a.IP.To16())
	if a.Zone != "" {
		ifi, err := net.InterfaceByName(a.Zone)
		if err != nil {
			return 0, nil, fmt.Errorf("resolve zone of %q: %w", addr, err)
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return unix.AF_INET6, sa, nil
}

func tcpAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	}
	return nil
}
