package uring

// This file is the accept step of the loop (loop_linux.go): the multishot accept, its errors and
// backoff, and opening each accepted connection.

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
)

// armAccept posts an accept on the listener. A multishot accept (Linux 5.19) stays armed and
// completes once per connection; a single-shot one is posted again after each.
func (l *loop) armAccept() {
	if l.draining || l.accepting != 0 {
		return
	}
	l.accepting = kindAccept
	l.push(acceptSQE(l.listenFD, l.multishotAccept, userData(kindAccept, 0, 0)))
}

func (l *loop) accepted(e cqe) {
	more := e.flags&cqeFMore != 0
	if !more {
		l.accepting = 0
	}
	if e.res >= 0 {
		if l.acceptRetries > 0 {
			l.s.cfg.Log("uring: loop %d: accepting again after %d failed accepts", l.id, l.acceptRetries)
			l.acceptRetries = 0
		}
		l.open(int(e.res))
		if !more {
			l.armAccept()
		}
		return
	}
	err := syscall.Errno(-e.res)
	if more {
		// The kernel kept the multishot accept armed despite the error: nothing to re-arm.
		l.s.cfg.Log("uring: loop %d: accept: %v", l.id, err)
		return
	}
	switch {
	case err == unix.ECANCELED:
		// Our own cancel, while draining.
	case err == unix.EINVAL:
		if !l.multishotAccept {
			l.s.fail(fmt.Errorf("uring: loop %d: accept on fd %d: %w", l.id, l.listenFD, err))
			return
		}
		// Kernels before 5.19 reject the multishot flag: fall back to one accept per SQE.
		l.s.cfg.Log("uring: loop %d: multishot accept unsupported (%v); using single-shot accept", l.id, err)
		l.multishotAccept = false
		l.armAccept()
	case sockutil.IsResourceShortage(err):
		// Out of descriptors or memory. The waiting clients stay in the listen backlog; try
		// again after a pause rather than spin, since only a closing connection frees an fd.
		// While the fd table stays full every retry fails the same way: log the first only.
		if l.acceptRetries == 0 {
			l.s.cfg.Log("uring: loop %d: accept: %v; pausing accept, retrying every %v, clients wait in the backlog",
				l.id, err, acceptBackoff)
		}
		l.acceptRetries++
		if !l.draining {
			l.accepting = kindBackoff
			l.push(timeoutSQE(&l.backoff, userData(kindBackoff, 0, 0)))
		}
	case err == unix.EBADF, err == unix.ENOTSOCK, err == unix.EOPNOTSUPP:
		// accept(2) lists EOPNOTSUPP both for a listener that is not SOCK_STREAM and among the
		// network errors a queued connection can pass on (sockutil retries it for that reason).
		// Here the listener is ours and known to be TCP, but an io_uring accept also answers
		// EOPNOTSUPP for an opcode feature this kernel lacks, which no retry would fix.
		l.s.fail(fmt.Errorf("uring: loop %d: accept on fd %d: %w", l.id, l.listenFD, err))
	default:
		// ECONNABORTED, EPROTO, EPERM (a firewall) and the like concern one connection that
		// has already left the queue: take the next one.
		l.armAccept()
	}
}

// open starts serving a freshly accepted socket.
func (l *loop) open(fd int) {
	if l.draining {
		unix.Close(fd) // it slipped in while the accept was being cancelled
		l.Rejected()
		return
	}
	if err := sockutil.SetNoDelay(fd); err != nil {
		l.s.cfg.Log("uring: loop %d: %v", l.id, err)
	}
	var slot int32
	if n := len(l.free); n > 0 {
		slot, l.free = l.free[n-1], l.free[:n-1]
	} else {
		slot = int32(len(l.conns))
		l.conns = append(l.conns, nil)
	}
	c := &conn{fd: fd, slot: slot, sendFrom: fromOutbound, outbound: l.pool.Outbound()}
	if old := l.conns[slot]; old != nil {
		panic("uring: reusing a live slot")
	}
	// A fresh generation per connection means user data left from a previous connection in
	// the same slot can never be mistaken for this one's.
	l.generation++
	c.gen = l.generation
	l.conns[slot] = c
	l.Opened()
	l.armRecv(c, false)
}
