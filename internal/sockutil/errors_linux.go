package sockutil

import (
	"errors"

	"golang.org/x/sys/unix"
)

// pendingNetErrors are the errors Linux's accept(2) passes on from a queued connection that failed
// before the server took it. Its man page says to treat them like EAGAIN and retry: the listener
// is fine, one handshake was not. EPERM is on the list because the man page gives firewall rules
// as a cause of it.
var pendingNetErrors = []error{
	unix.ENETDOWN, unix.EPROTO, unix.ENOPROTOOPT, unix.EHOSTDOWN, unix.ENONET,
	unix.EHOSTUNREACH, unix.EOPNOTSUPP, unix.ENETUNREACH, unix.EPERM,
}

// IsPendingNetError reports whether err is one of the errors accept(2) returns for a queued
// connection that failed, not for the listener.
func IsPendingNetError(err error) bool {
	for _, e := range pendingNetErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// IsAcceptRetryable reports whether an accept(2) error concerns one connection or one call rather
// than the listener, so that the next accept may well succeed: EINTR (a signal), ECONNABORTED (a
// client that reset while queued), and the pending network errors.
func IsAcceptRetryable(err error) bool {
	return errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) || IsPendingNetError(err)
}

// IsResourceShortage reports whether an accept(2) error means the process or the kernel is out of
// something (file descriptors, socket buffers, memory) that comes back only when some connection
// closes. Retrying at once would spin on it; the waiting clients stay in the backlog meanwhile.
func IsResourceShortage(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

// IsPeerGone reports whether err says the client went away (reset, closed while the server was
// still writing, or timed out): the normal end of many connections, not worth a log line.
func IsPeerGone(err error) bool {
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ETIMEDOUT)
}
