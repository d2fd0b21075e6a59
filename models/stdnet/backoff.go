package stdnet

import (
	"errors"
	"syscall"
	"time"
)

// acceptBackoff paces accept retries after a temporary error such as EMFILE: retrying at once
// would spin a core on an error that only goes away when some connection closes, and 50 ms is
// short enough that a waiting client barely notices.
const acceptBackoff = 50 * time.Millisecond

// retryable reports whether an accept error can go away by itself: the process or the system is
// out of fds or memory (it passes when connections close), or one client's handshake failed
// (accept(2) lists these network errors as ones to retry).
func retryable(err error) bool {
	for _, errno := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EPROTO, syscall.ENETDOWN, syscall.ENOPROTOOPT, syscall.EHOSTDOWN, syscall.ENONET,
		syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH, syscall.EPERM,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
