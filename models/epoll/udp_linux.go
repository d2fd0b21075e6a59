package epoll

import (
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// datagramBatch is how many datagrams one recvmmsg or sendmmsg moves. 32 amortises each call over
// enough datagrams that a loop under load makes a few syscalls per batch rather than two per
// datagram, while the batch's slots (32 × sockutil.MaxDatagram, about 2 MiB, resident only as far
// as datagrams fill them) stay small per loop. It also bounds how long the first datagram of a
// batch waits for its reply: the handler runs for every datagram of the batch before it is sent.
const datagramBatch = 32

// StartUDP is the UDP variant: cfg.Loops loops (default GOMAXPROCS), each with its own UDP socket
// on cfg.Addr's port (an SO_REUSEPORT group when there are several), echoing every datagram to
// its sender.
func StartUDP(cfg server.Config) (server.Server, error) {
	fds, addr, err := sockutil.ListenUDPGroup(cfg.Addr, loopCount(cfg), true)
	if err != nil {
		return nil, fmt.Errorf("epoll: udp on %s: %w", cfg.Addr, err)
	}
	return serveDatagrams(cfg, fds, addr)
}

// serveDatagrams starts one UDP loop on each of fds, which it owns from here on, on error too.
func serveDatagrams(cfg server.Config, fds []int, addr net.Addr) (server.Server, error) {
	// Every loop has a socket of its own, as with -reuseport, so newLoop registers it without
	// EPOLLEXCLUSIVE, which would also forbid the EPOLL_CTL_MOD that arms EPOLLOUT.
	cfg.ReusePort = true
	s := &srv{cfg: cfg, addr: addr, listeners: fds}
	// The server holds at most ReplyQueueLimit replies, whatever its number of loops.
	queueShare := sockutil.ReplyQueueLimit / len(fds)
	var loops []*udpLoop
	for _, fd := range fds {
		l, err := newLoop(s, fd)
		if err != nil {
			s.closeFDs()
			return nil, err
		}
		s.loops = append(s.loops, l)
		loops = append(loops, &udpLoop{
			loop:     l,
			batch:    sockutil.NewDatagrams(datagramBatch),
			replies:  sockutil.NewReplyQueue(datagramBatch, queueShare),
			handler:  cfg.Handler(),
			interest: unix.EPOLLIN, // as newLoop registered it
		})
	}
	s.serve(func(i int) { loops[i].run() })
	return s, nil
}

// udpLoop is one loop of the UDP variant: the TCP loop's epoll instance, waker, wait and
// counters, with the loop's UDP socket where its listener was (listenFD), and no connections.
type udpLoop struct {
	*loop
	batch    *sockutil.Datagrams
	replies  *sockutil.ReplyQueue // replies the socket had no room for: the loop's share of ReplyQueueLimit
	handler  server.Handler
	interest uint32 // the socket's interest registered with epoll now

	ioErrors sockutil.LogBurst
}

// run is the UDP event loop, on its own locked OS thread for the reason the TCP loop's run gives.
func (u *udpLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer u.srv.running.Done()
	for {
		n, err := u.wait()
		if err == unix.EINTR {
			continue // a signal arrived while we slept; nothing is lost, wait again
		}
		if err != nil {
			u.srv.fail(fmt.Errorf("epoll: epoll_wait on epfd %d: %w", u.epfd, err))
			return
		}
		for i := range n {
			switch ev := &u.events[i]; int(ev.Fd) {
			case u.waker.FD():
				// Only Close writes the eventfd. It is not drained: this loop is leaving.
				if u.srv.IsClosing() {
					return
				}
			case u.listenFD:
				if !u.serve(ev.Events) {
					return
				}
			}
		}
	}
}

// serve handles one readiness report of the socket and reports whether the loop can go on.
// Queued replies go first: they were read first, and sending them makes room for this read's.
func (u *udpLoop) serve(events uint32) bool {
	if u.replies.Len() > 0 && events&(unix.EPOLLOUT|unix.EPOLLERR) != 0 {
		u.flush()
	}
	if events&(unix.EPOLLIN|unix.EPOLLERR) != 0 && !u.read() {
		return false
	}
	return u.rearm()
}

// read takes one batch of datagrams, runs the handler on each, in order, and sends the batch
// back. One batch per readiness report: level-triggered, the socket is reported again on the
// next wait if more is waiting. It reports whether the loop can go on.
func (u *udpLoop) read() bool {
	n, err := u.batch.Recv(u.listenFD)
	switch {
	case err == unix.EAGAIN:
		return true // nothing after all (a report for EPOLLERR alone)
	case err == unix.EBADF, err == unix.ENOTSOCK, err == unix.EFAULT, err == unix.EINVAL:
		// The socket or the batch is broken and every retry would fail the same way.
		u.srv.fail(fmt.Errorf("epoll: recvmmsg on fd %d: %w", u.listenFD, err))
		return false
	case err != nil:
		// A socket's pending error, which the kernel clears as it reports it, or a memory
		// shortage: the datagrams stay in the kernel and the next report tries again.
		u.ioErrors.Begin(u.srv.cfg.Log, "epoll: recvmmsg on fd %d: %v", u.listenFD, err)
		return true
	}
	for i := range n {
		p := u.batch.Payload(i)
		u.counts.Received(len(p))
		if !u.handler.Idle() {
			u.handler.Handle(p)
		}
	}
	u.reply(n)
	return true
}

// reply sends the n datagrams of the batch back to their senders, from the slots they were read
// into. What the socket has no room for goes into the reply queue, which rearm then arms EPOLLOUT
// for, and what the queue has no room for is dropped and counted. If replies are queued already,
// the socket was full at the last try, so these go behind them without a try of their own.
func (u *udpLoop) reply(n int) {
	next := 0
	for u.replies.Len() == 0 && next < n {
		sent, err := u.batch.SendBack(u.listenFD, next, n)
		for i := next; i < next+sent; i++ {
			u.counts.Sent(len(u.batch.Payload(i)))
		}
		next += sent
		if err == nil || err == unix.EAGAIN {
			break // all sent, or a partial send or a full socket: the rest waits for EPOLLOUT
		}
		// The first datagram of the call could not be sent, for a reason of its own (no route
		// to its sender, a firewall's EPERM): it is dropped, and the rest are tried again.
		u.dropUnsendable(err)
		next++
	}
	for i := next; i < n; i++ {
		if !u.replies.Hold(u.batch, i) {
			u.counts.Dropped() // the queue is at its limit
		}
	}
}

// flush sends queued replies until the queue is empty or the socket is full again.
func (u *udpLoop) flush() {
	for u.replies.Len() > 0 {
		_, err := u.replies.Send(u.listenFD, u.counts.Sent)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			u.replies.Drop()
			u.dropUnsendable(err)
		}
	}
}

// dropUnsendable counts a reply the kernel refused, and logs it at a rate that a flood of them
// cannot turn into a flood of log lines.
func (u *udpLoop) dropUnsendable(err error) {
	u.counts.Dropped()
	u.ioErrors.Begin(u.srv.cfg.Log, "epoll: sendmmsg on fd %d: %v; reply dropped", u.listenFD, err)
}

// rearm keeps EPOLLOUT armed exactly while replies are queued, with one epoll_ctl when that
// changes: level-triggered, an armed EPOLLOUT on a writable socket would be reported on every
// wait. EPOLLIN stays armed throughout, so that while the queue is full datagrams are still
// taken and counted as dropped rather than left to overflow the receive buffer uncounted. It
// reports whether the loop can go on.
func (u *udpLoop) rearm() bool {
	want := uint32(unix.EPOLLIN)
	if u.replies.Len() > 0 {
		want |= unix.EPOLLOUT
	}
	if want == u.interest {
		return true
	}
	if err := u.ctl(unix.EPOLL_CTL_MOD, u.listenFD, want); err != nil {
		u.srv.fail(fmt.Errorf("epoll: epoll_ctl mod udp fd %d: %w", u.listenFD, err))
		return false
	}
	u.interest = want
	return true
}
