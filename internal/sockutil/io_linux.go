package sockutil

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The per-message syscall path. Which pair a model uses follows from whether its calls may block;
// see the package documentation. Every send is sendto(2) with MSG_NOSIGNAL: a peer that has gone
// away then fails the call with EPIPE instead of raising SIGPIPE in the whole process, and send
// skips the generic file-write layer (file position lock, rw_verify_area) that write(2) goes
// through before it reaches the socket.

// ReadNonblock is read(2) on a non-blocking socket, retried when a signal interrupts it before
// any byte is copied. p must not be empty.
func ReadNonblock(fd int, p []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno == unix.EINTR {
			continue // a signal arrived before any byte was copied: nothing was read
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// SendNonblock is sendto(2) with MSG_NOSIGNAL on a non-blocking socket, retried when a signal
// interrupts it before any byte is copied. A full send buffer is EAGAIN. p must not be empty.
func SendNonblock(fd int, p []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
		if errno == unix.EINTR {
			continue // a signal arrived before any byte was copied: nothing was sent
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// Read is read(2) for a thread that may sleep in it, retried when a signal interrupts it before
// any byte is copied. EINTR is rare here (the package documentation says why), but a handler
// installed without SA_RESTART (by C code, say) would surface it. p must not be empty.
func Read(fd int, p []byte) (int, error) {
	for {
		n, _, errno := unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// Send is sendto(2) with MSG_NOSIGNAL for a thread that may sleep in it. On a blocking socket it
// returns once the kernel has taken p whole, or fails; a signal that interrupts it after part of
// p was copied makes it return that part, so callers loop until p is sent. p must not be empty.
func Send(fd int, p []byte) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
		if errno == unix.EINTR {
			continue // interrupted before any byte was copied: nothing was sent
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}
