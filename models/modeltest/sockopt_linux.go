package modeltest

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testNoDelay checks that the server's end of an accepted connection has TCP_NODELAY set, as
// every model's does (sockutil.SetNoDelay says why). It finds that end among this process's fds
// as the socket whose local and peer addresses are the client's peer and local addresses; a model
// that serves its connections in other processes (process, prefork) has no such fd here, and the
// check is skipped for it.
func testNoDelay(t *testing.T, addr string) {
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One echo: by its end the server has accepted the connection and set its options.
	if err := Echo(c, 9, 0, 100); err != nil {
		t.Fatal(err)
	}
	local, peer := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	fd := -1
	for deadline := time.Now().Add(2 * time.Second); fd < 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		fd = serverEnd(t, local, peer)
	}
	if fd < 0 {
		t.Skip("the server's end of the connection is not in this process: the model serves it in a child process")
	}
	on, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil {
		t.Fatalf("getsockopt TCP_NODELAY on the server's fd %d: %v", fd, err)
	}
	if on == 0 {
		t.Errorf("the server's end of the connection (fd %d) has TCP_NODELAY off; every model sets it on accepted connections", fd)
	}
}

// serverEnd returns the fd of this process whose socket is bound to peer and connected to local,
// or -1.
func serverEnd(t *testing.T, local, peer *net.TCPAddr) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list fds: %v", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// The fd may be closed, or be another file, by the time these calls run: they then
		// fail or return other addresses, and the fd is passed over.
		sa, err := unix.Getsockname(fd)
		if err != nil || !sameAddr(sa, peer) {
			continue
		}
		pa, err := unix.Getpeername(fd)
		if err != nil || !sameAddr(pa, local) {
			continue
		}
		return fd
	}
	return -1
}

// sameAddr reports whether sa is a, IPv4-mapped IPv6 addresses matching their IPv4 form.
func sameAddr(sa unix.Sockaddr, a *net.TCPAddr) bool {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port == a.Port && net.IP(sa.Addr[:]).Equal(a.IP)
	case *unix.SockaddrInet6:
		return sa.Port == a.Port && net.IP(sa.Addr[:]).Equal(a.IP)
	}
	return false
}
