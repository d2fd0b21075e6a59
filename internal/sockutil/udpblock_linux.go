package sockutil

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The per-datagram syscall path for threads that sleep in it: recvfrom(2) and sendto(2) on a
// blocking UDP socket, through the runtime-aware unix.Syscall6 like Read and Send (the package
// documentation says why a sleeping thread must take that path).

// Peer is the address a datagram came from, as the kernel wrote it. Recvfrom fills it and Sendto
// sends to it unchanged, so a reply goes to exactly its sender without converting the address to
// a unix.Sockaddr and back (an allocation per datagram) on the way.
type Peer struct {
	addr unix.RawSockaddrAny
	len  uint32
}

// Recvfrom is recvfrom(2) on a blocking UDP socket: it sleeps until a datagram arrives, copies it
// into p and its sender into from. A signal that interrupts the wait is retried: no datagram was
// taken. p must hold MaxDatagram bytes, or a longer datagram is cut short, as recvfrom(2) does.
//
// A datagram may be empty, so n == 0 alone is no end of stream: after shutdown(2) of the socket's
// reading side a sleeping Recvfrom returns 0 too, with no sender (from.Valid() is false).
func Recvfrom(fd int, p []byte, from *Peer) (int, error) {
	for {
		from.len = uint32(unsafe.Sizeof(from.addr))
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0,
			uintptr(unsafe.Pointer(&from.addr)), uintptr(unsafe.Pointer(&from.len)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			from.len = 0
			return 0, errno
		}
		return int(n), nil
	}
}

// Valid reports whether p names a sender: false after a Recvfrom that returned no datagram.
func (p *Peer) Valid() bool { return p.len > 0 }

// Sendto is sendto(2) of one datagram to a peer, on a blocking UDP socket: it returns once the
// kernel has taken the datagram whole, or fails. A datagram is never sent in part, and an empty
// p sends an empty datagram. A signal that interrupts it before the kernel took the datagram is
// retried.
func Sendto(fd int, p []byte, to *Peer) (int, error) {
	var buf unsafe.Pointer
	if len(p) > 0 {
		buf = unsafe.Pointer(&p[0])
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(buf), uintptr(len(p)), 0,
			uintptr(unsafe.Pointer(&to.addr)), uintptr(to.len))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}
