package sockutil

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// MaxDatagram is the largest UDP payload a read must make room for: 65,535 bytes minus the 8-byte
// UDP header is the most one datagram can carry over IPv6 (65,507 over IPv4, whose 20-byte header
// counts too). A read buffer of this size never truncates a datagram.
const MaxDatagram = 65535 - 8

// ReplyQueueLimit bounds the replies a UDP variant holds that it has read but not yet sent, when
// its socket's send buffer is full (EAGAIN): a UDP server that buffered without limit would turn
// a flood into unbounded memory. 1,024 replies of up to MaxDatagram bytes is at most 64 MiB, and
// past it a datagram is dropped and counted (server.Counters.Dropped), as the kernel itself drops
// what a full receive buffer cannot take.
const ReplyQueueLimit = 1024

// ListenUDP opens a UDP socket bound to addr, close-on-exec, non-blocking if asked, under the
// same dual-stack rule as Listen. It returns the fd and the bound address.
func ListenUDP(addr string, nonblocking bool) (int, *net.UDPAddr, error) {
	want, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return -1, nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	return listenUDP(want, nonblocking, false)
}

// ListenUDPGroup opens n UDP sockets on addr for n event loops, as ListenGroup does for TCP: with
// n > 1 they are SO_REUSEPORT sockets sharing one port (the one the kernel picked for the first,
// if addr asked for port 0), and the kernel hands each datagram to one of them by a hash of its
// source and destination, so every datagram of one client socket reaches the same loop. On error
// it closes those it opened.
func ListenUDPGroup(addr string, n int, nonblocking bool) ([]int, *net.UDPAddr, error) {
	want, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	var fds []int
	var bound *net.UDPAddr
	for i := range max(n, 1) {
		fd, got, err := listenUDP(want, nonblocking, n > 1)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, nil, fmt.Errorf("udp socket %d of %d: %w", i+1, n, err)
		}
		fds = append(fds, fd)
		if bound == nil {
			bound = got
			// The others join the first one's port; the host stays as asked, so that a
			// dual-stack group stays dual-stack.
			want = &net.UDPAddr{IP: want.IP, Port: got.Port, Zone: want.Zone}
		}
	}
	return fds, bound, nil
}

func listenUDP(want *net.UDPAddr, nonblocking, reusePort bool) (int, *net.UDPAddr, error) {
	asTCP := &net.TCPAddr{IP: want.IP, Port: want.Port, Zone: want.Zone} // same shape; sockaddrOf takes this one
	family, sa, err := sockaddrOf(asTCP)
	if err != nil {
		return -1, nil, err
	}
	flags := unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	if nonblocking {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(family, flags, unix.IPPROTO_UDP)
	if errors.Is(err, unix.EAFNOSUPPORT) && want.IP == nil {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: want.Port}
		fd, err = unix.Socket(family, flags, unix.IPPROTO_UDP)
	}
	if err != nil {
		return -1, nil, fmt.Errorf("socket for udp %s: %w", want, err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			unix.Close(fd)
			return -1, nil, fmt.Errorf("setsockopt SO_REUSEPORT on fd %d: %w", fd, err)
		}
	}
	if family == unix.AF_INET6 && want.IP == nil {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return -1, nil, fmt.Errorf("setsockopt IPV6_V6ONLY on fd %d: %w", fd, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("bind udp %s: %w", want, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("getsockname fd %d: %w", fd, err)
	}
	a := TCPAddrOf(got)
	return fd, &net.UDPAddr{IP: a.IP, Port: a.Port, Zone: a.Zone}, nil
}
