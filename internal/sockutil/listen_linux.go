package sockutil

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// ListenBacklog is how many connections the kernel may complete on a server's behalf before it
// accepts them. Clients that arrive while every thread is busy, while a loop serves others, or
// while accept fails with EMFILE wait in this queue, so it is as long as the kernel allows: Linux
// clamps it to net.core.somaxconn, 4096 by default since Linux 5.4.
const ListenBacklog = unix.SOMAXCONN

// Listen opens a TCP socket bound to addr ("host:port"; ":port" or an empty host means every
// address, IPv4 included) and listening on it. sockFlags is ORed into the socket type:
// unix.SOCK_NONBLOCK for an event loop, 0 for threads that block in accept(2); SOCK_CLOEXEC is
// always set so that no child process inherits the listener. Listen returns the fd and the bound
// address, whose port is the one the kernel picked when addr asked for port 0.
func Listen(addr string, sockFlags int) (int, *net.TCPAddr, error) {
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	family, sa, err := sockaddrOf(want)
	if err != nil {
		return -1, nil, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|sockFlags, unix.IPPROTO_TCP)
	if err != nil {
		return -1, nil, fmt.Errorf("socket for %s: %w", addr, err)
	}
	bound, err := bindAndListen(fd, family, want, sa)
	if err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, bound, nil
}

func bindAndListen(fd, family int, want *net.TCPAddr, sa unix.Sockaddr) (*net.TCPAddr, error) {
	// SO_REUSEADDR lets a restarted server bind its port while connections from its previous run
	// sit in TIME_WAIT, as Go's net package does for every listener.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, fmt.Errorf("setsockopt SO_REUSEADDR on fd %d: %w", fd, err)
	}
	if family == unix.AF_INET6 && want.IP == nil {
		// An address without a host (":8080") means every address, IPv4 included, as in package
		// net: an IPv6 socket that is not v6-only also accepts IPv4 clients, which it sees as
		// IPv4-mapped addresses.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return nil, fmt.Errorf("setsockopt IPV6_V6ONLY on fd %d: %w", fd, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind %s: %w", want, err)
	}
	if err := unix.Listen(fd, ListenBacklog); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", want, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname fd %d: %w", fd, err)
	}
	return tcpAddrOf(got), nil
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

func tcpAddrOf(sa unix.Sockaddr) *net.TCPAddr {
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
