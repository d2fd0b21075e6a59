package sockutil

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Read is read(2) on a socket, retried when a signal interrupts it before any byte is copied. On
// a blocking socket it waits for data; on a non-blocking one it returns EAGAIN instead. The
// runtime installs its signal handlers with SA_RESTART, so EINTR is rare, but a handler installed
// without it (by C code, say) would surface it here.
func Read(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n, err
	}
}
