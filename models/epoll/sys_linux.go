package epoll

import (
	"encoding/binary"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listenTCP opens a non-blocking listening socket bound to addr. An address without an IP
// (":8080") listens on every IPv4 interface.
func listenTCP(addr *net.TCPAddr, reusePort bool) (int, error) {
	family, sa, err := sockaddr(addr)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	setup := func() error {
		// A restarted server can bind its port while the previous run's connections still sit
		// in TIME_WAIT; Go's net.Listen does the same.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("setsockopt SO_REUSEADDR: %w", err)
		}
		if reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return fmt.Errorf("setsockopt SO_REUSEPORT: %w", err)
			}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if err := unix.Listen(fd, listenBacklog); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		return nil
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func sockaddr(addr *net.TCPAddr) (family int, sa unix.Sockaddr, err error) {
	if addr.IP == nil {
		return unix.AF_INET, &unix.SockaddrInet4{Port: addr.Port}, nil
	}
	if ip4 := addr.IP.To4(); ip4 != nil {
		return unix.AF_INET, &unix.SockaddrInet4{Port: addr.Port, Addr: [4]byte(ip4)}, nil
	}
	sa6 := &unix.SockaddrInet6{Port: addr.Port, Addr: [16]byte(addr.IP.To16())}
	if addr.Zone != "" {
		ifi, err := net.InterfaceByName(addr.Zone)
		if err != nil {
			return 0, nil, fmt.Errorf("zone of %s: %w", addr, err)
		}
		sa6.ZoneId = uint32(ifi.Index)
	}
	return unix.AF_INET6, sa6, nil
}

// localAddr returns the address a socket is bound to.
func localAddr(fd int) (*net.TCPAddr, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unexpected address family %T", sa)
}

// Reads and writes go through sockutil.ReadNonblock and sockutil.SendNonblock: raw system calls
// without the Go scheduler's entersyscall/exitsyscall bookkeeping, which only calls that may
// block need, and send(2) with MSG_NOSIGNAL, so a client that has gone away fails the write with
// EPIPE instead of raising SIGPIPE. pollEvents below is raw for the same reason; the blocking
// epoll_wait goes through unix.EpollWait.

// pollEvents is epoll_wait with a zero timeout: it returns the fds ready now, or none. It is
// made as epoll_pwait with no signal mask, which every Linux architecture has.
func pollEvents(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// wake makes a loop's eventfd readable, which returns the loop from epoll_wait.
func wake(eventFD int) error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(eventFD, one[:])
		switch err {
		case unix.EINTR:
			continue // interrupted before the counter was added to: add it now
		case nil, unix.EAGAIN:
			// EAGAIN means the counter is at its maximum: the loop has been woken already.
			return nil
		}
		return fmt.Errorf("write eventfd %d: %w", eventFD, err)
	}
}
