package sockutil

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListen checks that each form of address gets a listener the kernel accepts clients on, at
// the address Listen reports.
func TestListen(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		dialTo []string // hosts a client dials, with the bound port
		ipv6   bool
	}{
		{addr: "127.0.0.1:0", dialTo: []string{"127.0.0.1"}},
		{addr: "[::1]:0", dialTo: []string{"::1"}, ipv6: true},
		// ":port" must listen on both families, as package net does, not on IPv4 alone.
		{addr: ":0", dialTo: []string{"127.0.0.1", "::1"}, ipv6: true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if tc.ipv6 && !haveIPv6Loopback() {
				t.Skip("no IPv6 loopback on this machine")
			}
			fd, bound, err := Listen(tc.addr, ListenOptions{})
			if err != nil {
				t.Fatalf("Listen(%q): %v", tc.addr, err)
			}
			defer unix.Close(fd)
			if bound.Port == 0 {
				t.Fatalf("Listen(%q) reported port 0; want the port the kernel picked", tc.addr)
			}
			for _, host := range tc.dialTo {
				dialAndAccept(t, fd, net.JoinHostPort(host, fmt.Sprint(bound.Port)))
			}
		})
	}
}

// dialAndAccept connects to addr and accepts the connection on the blocking listener lfd.
func dialAndAccept(t *testing.T, lfd int, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	cfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatalf("accept the client of %s: %v", addr, err)
	}
	defer unix.Close(cfd)
	if _, err := unix.Write(cfd, []byte("x")); err != nil {
		t.Fatalf("write to the client of %s: %v", addr, err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'x' {
		t.Fatalf("client of %s read %q, %v; want \"x\"", addr, b[:], err)
	}
}

func TestListenFlags(t *testing.T) {
	for _, nonblocking := range []bool{false, true} {
		fd, _, err := Listen("127.0.0.1:0", ListenOptions{Nonblocking: nonblocking})
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatalf("fcntl F_GETFL: %v", err)
		}
		if got := fl&unix.O_NONBLOCK != 0; got != nonblocking {
			t.Errorf("Nonblocking %v: O_NONBLOCK is %v", nonblocking, got)
		}
		fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatalf("fcntl F_GETFD: %v", err)
		}
		if fdfl&unix.FD_CLOEXEC == 0 {
			t.Errorf("Nonblocking %v: the listener lacks FD_CLOEXEC, so child processes would inherit it", nonblocking)
		}
		if nonblocking {
			// With no client queued, a non-blocking accept returns at once.
			if _, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC); !errors.Is(err, unix.EAGAIN) {
				t.Errorf("accept on an idle non-blocking listener: %v, want EAGAIN", err)
			}
		}
		unix.Close(fd)
	}
}

func TestListenErrors(t *testing.T) {
	fd, bound, err := Listen("127.0.0.1:0", ListenOptions{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer unix.Close(fd)
	// SO_REUSEADDR does not let a second socket listen on a port that is already listening.
	if fd2, _, err := Listen(bound.String(), ListenOptions{}); !errors.Is(err, unix.EADDRINUSE) {
		if err == nil {
			unix.Close(fd2)
		}
		t.Errorf("second Listen on %s: %v, want EADDRINUSE", bound, err)
	}
	if _, _, err := Listen("127.0.0.1", ListenOptions{}); err == nil {
		t.Errorf("Listen on an address without a port succeeded")
	}
}

// TestListenGroup checks that a group of listeners shares one port, that the kernel hands
// connections to its members, and that ":0" stays dual-stack for every member.
func TestListenGroup(t *testing.T) {
	addr := "127.0.0.1:0"
	if haveIPv6Loopback() {
		addr = ":0"
	}
	fds, bound, err := ListenGroup(addr, 3, ListenOptions{})
	if err != nil {
		t.Fatalf("ListenGroup(%q, 3): %v", addr, err)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if len(fds) != 3 {
		t.Fatalf("ListenGroup returned %d listeners, want 3", len(fds))
	}
	for _, fd := range fds {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		if got := TCPAddrOf(sa); got.Port != bound.Port || !got.IP.Equal(bound.IP) {
			t.Errorf("listener fd %d is bound to %v, want %v", fd, got, bound)
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT); err != nil || v == 0 {
			t.Errorf("listener fd %d: SO_REUSEPORT %d, %v; want it set", fd, v, err)
		}
	}
	// A listener without SO_REUSEPORT cannot join the group.
	if more, _, err := ListenGroup(bound.String(), 1, ListenOptions{}); err == nil {
		unix.Close(more[0])
		t.Errorf("a plain listener joined the SO_REUSEPORT group on %v", bound)
	}
}

func haveIPv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}
