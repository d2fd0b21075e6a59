package process

import (
	"errors"

	"golang.org/x/sys/unix"
)

// isResourceError reports the accept errors that mean the process is short of fds or memory.
// They clear only when some connection or process ends, so the caller waits acceptBackoff and
// retries while clients wait in the backlog; retrying at once would spin.
func isResourceError(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// isPendingNetError reports the errors that Linux's accept(2) passes on from a queued connection
// that failed before we took it (ECONNABORTED, and the network errors its man page lists), and
// EPERM, which a firewall rule denying the connection returns. Each concerns one connection,
// not the listener, so the caller retries at once, as for EAGAIN.
func isPendingNetError(err error) bool {
	for _, e := range []error{
		unix.ECONNABORTED, unix.EPROTO, unix.ENETDOWN, unix.ENOPROTOOPT, unix.EHOSTDOWN,
		unix.ENONET, unix.EHOSTUNREACH, unix.EOPNOTSUPP, unix.ENETUNREACH, unix.EPERM,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
