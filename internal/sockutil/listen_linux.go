package sockutil

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// ListenBacklog is how many connections the kernel may complete on a server's behalf before it
// accepts them. Clients that arrive while every thread is busy, while a loop serves others, or
// while accept fails with EMFILE wait in this queue, so it is as long as the kernel allows: Linux
// clamps any larger value to net.core.somaxconn (4096 by default since Linux 5.4), which is also
// the backlog Go's net.Listen asks for, so stdnet, gnet and the process model get the same.
const ListenBacklog = 65535

// ListenOptions are what differ between the listeners of the models.
type ListenOptions struct {
	// Nonblocking makes the listener O_NONBLOCK, for an event loop; without it accept(2) blocks,
	// for threads that sleep in it (and for io_uring, which waits inside the kernel).
	Nonblocking bool
	// ReusePort sets SO_REUSEPORT, so that several listeners share the port and the kernel
	// spreads new connections over them by a hash of their addresses.
	ReusePort bool
	// Backlog is the accept queue asked of listen(2); 0 means ListenBacklog.
	Backlog int
}

// Listen opens a TCP socket bound to addr and listening on it, close-on-exec so that no child
// process inherits it, with SO_REUSEADDR so that a restarted server can bind its port while
// connections of its previous run sit in TIME_WAIT, as Go's net package does for every listener.
//
// The dual-stack rule, the same for every model and the same as package net's: "host:port"
// listens on that address; ":port" or an empty host listens on every address of both families,
// as one IPv6 socket that is not v6-only (IPv4 clients appear as IPv4-mapped addresses), or on
// every IPv4 address where the kernel has no IPv6.
//
// Listen returns the fd and the bound address, whose port is the one the kernel picked when addr
// asked for port 0.
func Listen(addr string, opt ListenOptions) (int, *net.TCPAddr, error) {
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	return listen(want, opt)
}

// ListenGroup opens n listeners on addr for n event loops: with n > 1 they are SO_REUSEPORT
// listeners sharing one port (the one the kernel picked for the first, if addr asked for port
// 0), whatever opt.ReusePort says. On error it closes those it opened.
func ListenGroup(addr string, n int, opt ListenOptions) ([]int, *net.TCPAddr, error) {
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	if n > 1 {
		opt.ReusePort = true
	}
	var fds []int
	var bound *net.TCPAddr
	for i := range max(n, 1) {
		fd, got, err := listen(want, opt)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, nil, fmt.Errorf("listener %d of %d: %w", i+1, n, err)
		}
		fds = append(fds, fd)
		if bound == nil {
			bound = got
			// The others join the first one's port; the host stays as asked, so that a
			// dual-stack group stays dual-stack.
			want = &net.TCPAddr{IP: want.IP, Port: got.Port, Zone: want.Zone}
		}
	}
	return fds, bound, nil
}

func listen(want *net.TCPAddr, opt ListenOptions) (int, *net.TCPAddr, error) {
	family, sa, err := sockaddrOf(want)
	if err != nil {
		return -1, nil, err
	}
	flags := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
	if opt.Nonblocking {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(family, flags, unix.IPPROTO_TCP)
	if errors.Is(err, unix.EAFNOSUPPORT) && want.IP == nil {
		// A kernel built or booted without IPv6: every address is every IPv4 address.
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: want.Port}
		fd, err = unix.Socket(family, flags, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, nil, fmt.Errorf("socket for %s: %w", want, err)
	}
	bound, err := bindAndListen(fd, family, want, sa, opt)
	if err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, bound, nil
}

func bindAndListen(fd, family int, want *net.TCPAddr, sa unix.Sockaddr, opt ListenOptions) (*net.TCPAddr, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, fmt.Errorf("setsockopt SO_REUSEADDR on fd %d: %w", fd, err)
	}
	if opt.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return nil, fmt.Errorf("setsockopt SO_REUSEPORT on fd %d: %w", fd, err)
		}
	}
	if family == unix.AF_INET6 && want.IP == nil {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return nil, fmt.Errorf("setsockopt IPV6_V6ONLY on fd %d: %w", fd, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind %s: %w", want, err)
	}
	backlog := opt.Backlog
	if backlog <= 0 {
		backlog = ListenBacklog
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", want, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname fd %d: %w", fd, err)
	}
	return TCPAddrOf(got), nil
}

// sockaddrOf converts a resolved address into the family and sockaddr that socket(2) and bind(2)
// take. An address without a host becomes the IPv6 any-address, which bindAndListen makes
// dual-stack.
func sockaddrOf(a *net.TCPAddr) (int, unix.Sockaddr, error) {
	if ip4 := a.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], ip4)
		return unix.AF_INET, sa, nil
	}
	sa := &unix.SockaddrInet6{Port: a.Port}
	copy(sa.Addr[:], a.IP.To16()) // a nil IP leaves ::, every address
	if a.Zone != "" {
		ifi, err := net.InterfaceByName(a.Zone)
		if err != nil {
			return 0, nil, fmt.Errorf("zone of %s: %w", a, err)
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return unix.AF_INET6, sa, nil
}

// TCPAddrOf converts a socket address from getsockname(2), getpeername(2) or accept(2) into a
// net.TCPAddr; it returns an empty address for a family other than IPv4 and IPv6.
func TCPAddrOf(sa unix.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3]), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return &net.TCPAddr{}
}
