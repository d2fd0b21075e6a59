package sockutil

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// AcceptBatch bounds how many connections an event loop accepts per readiness report of its
// listener (per pass, for the busy poll), so that a flood of new clients cannot keep the loop
// from the connections it already serves, and connections spread over several loops instead of
// all landing on the first to wake. The rest of the backlog keeps the listener ready, so the
// next wait reports it again at once.
const AcceptBatch = 64

// AcceptPending takes up to AcceptBatch connections from the non-blocking listener lfd with
// accept4(2), each non-blocking and close-on-exec, sets SetNoDelay on it and hands it to open,
// which then owns it. It returns how many it accepted and nil once the backlog is empty
// (EAGAIN) or the batch is done. Errors that concern one queued connection
// (IsAcceptRetryable) are skipped. Any other error ends the batch and is returned wrapped: the
// caller tells a resource shortage (IsResourceShortage), which lasts until some connection
// closes, from a broken listener, since how to wait out the first is the model's own affair.
func AcceptPending(lfd int, open func(fd int), log func(format string, args ...any)) (int, error) {
	accepted := 0
	for range AcceptBatch {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			return accepted, nil // the backlog is empty, or another loop took the connection
		case IsAcceptRetryable(err):
			// A signal, or a client that reset or failed while it waited in the backlog
			// (ECONNABORTED, EPROTO, a firewall's EPERM): the listener is fine, take the next.
			continue
		default:
			return accepted, fmt.Errorf("accept4 on fd %d: %w", lfd, err)
		}
		if err := SetNoDelay(fd); err != nil {
			log("%v", err)
		}
		accepted++
		open(fd)
	}
	return accepted, nil
}

// SetNoDelay sets TCP_NODELAY on an accepted connection. Every model does, because Go's net
// package sets it on every TCP connection (so stdnet and gnet have it) and because an echo
// server answers at once: with Nagle's algorithm a small echo would wait for the client to
// acknowledge the previous one, and the models would compare on Nagle and delayed ACKs rather
// than on their IO. A failure is not fatal: the connection is served without the option, and a
// client that has already reset (the usual cause) shows at the first read, so that case returns
// nil; any other error is returned for the caller to log.
func SetNoDelay(fd int) error {
	err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err == nil || IsPeerGone(err) {
		return nil
	}
	return fmt.Errorf("setsockopt TCP_NODELAY on fd %d: %w", fd, err)
}
