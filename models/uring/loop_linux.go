package uring

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// Sizes of one loop's rings and buffers.
const (
	// sqEntries is the submission queue: a batch larger than this waits in ring.backlog for the
	// next io_uring_enter. 4096 SQEs are 256 KiB of shared memory.
	sqEntries = 4096
	// cqEntries is the completion queue. Every connection has at most four operations in
	// flight (a recv, a send, and the two cancels abort posts for them), and usually only two.
	// A multishot recv completes more than once, but each completion but its last holds a
	// provided buffer, so all of them together hold at most the pool's bufCount more. 32768
	// slots thus hold the completions of at least eight thousand connections before the
	// kernel has to park the rest on its overflow list (FEAT_NODROP), which loses nothing but
	// costs an allocation per completion; 512 KiB.
	cqEntries = 32768
	// bufSize is one provided buffer, the most one recv returns: sockutil.ReadBufferSize, the
	// read size of every model.
	bufSize = sockutil.ReadBufferSize
	// bufCount provided buffers per loop, 16 MiB of address space, touched as it is used. A buffer
	// is held only between a recv's completion and the end of the echo's first send attempt, so
	// this bounds how many connections one batch can serve, not how many can be open; a recv that
	// finds the pool empty completes with ENOBUFS and is posted again after the batch returns its
	// buffers.
	bufCount = 256
	// bufGroup is the provided-buffer group id; each ring has its own, so one id serves all.
	bufGroup = 0
	// acceptBackoff paces accept after EMFILE, ENFILE or ENOBUFS: re-arming at once would spin
	// on an error that only goes away when some connection closes.
	acceptBackoff = 50 * time.Millisecond
	// heldWait is how long a loop waits for completions while keeping its P before it falls
	// back to a wait that gives the P up (doc.go says why). A loop serving traffic is woken
	// well within it; an idle one hands its P back after this long. It is as long as the
	// epoll model's, and for the same reason: a shorter timeout is the CPU's next timer event,
	// reprogrammed at every wait.
	heldWait = 10 * time.Millisecond
	// inlineWaitMax is how many echoes of one batch may be submitted with ring.pushInline, so
	// that the wait after them sleeps at once. Their buffers go back to the pool only when the
	// loop next wakes, so this keeps three quarters of the pool free for the recvs meanwhile;
	// a larger batch has its echoes' completions reaped before the loop sleeps, as any other.
	inlineWaitMax = bufCount / 4
)

// opKind is what an operation was for. It sits in the low byte of the user data the kernel hands
// back with each completion; the rest names the connection slot and its generation. User data is
// an index, never a Go pointer: the kernel holds it across garbage collections.
type opKind uint8

const (
	kindWake opKind = iota + 1
	kindAccept
	kindBackoff
	kindRecv
	kindSend
	kindCancel
)

func userData(kind opKind, slot int32, gen uint32) uint64 {
	return uint64(gen)<<32 | uint64(uint32(slot))<<8 | uint64(kind)
}

func splitUserData(ud uint64) (kind opKind, slot int32, gen uint32) {
	return opKind(ud), int32(uint32(ud) >> 8), uint32(ud >> 32)
}

// Where a connection's in-flight send reads from.
const (
	fromOutbound = -1 // conn.outbound's first chunk, which stays put until the send completes
	fromOwn      = -2 // conn.own, the plain-recv buffer (kernels without buffer rings)
	// 0 and above: that provided buffer
)

// conn is one client connection. At most one recv and one send are in flight at a time, so the
// bytes of a connection are always sent in the order they were received.
type conn struct {
	fd   int
	slot int32
	gen  uint32

	recvArmed     bool
	recvMultishot bool // the armed recv is multishot: it stays armed across completions
	sendArmed     bool
	sendFrom      int // fromOutbound, fromOwn or a provided buffer id
	sendLen       int
	sendInline    bool // the send went in with ring.pushInline: its completion waits for the next wake

	// outbound holds echoed bytes the socket would not take at once, within the outbound bound
	// (sockutil.Pool states the rule). Queued bytes never move, so a send in flight reads them
	// in place; the conn keeps them reachable for the garbage collector until it completes.
	outbound sockutil.Outbound

	own []byte // receive buffer when the kernel has no buffer rings

	readClosed bool // recv returned 0: the client shut down its sending side
	closing    bool // aborted or drained: waiting for in-flight operations before close(2)
}

// queued is the bytes received and not yet sent.
func (c *conn) queued() int {
	n := c.outbound.Len()
	if c.sendArmed && c.sendFrom != fromOutbound {
		n += c.sendLen
	}
	return n
}

// loop is one ring and everything it serves: its listener, its connections, its buffers. Only
// its own locked OS thread touches it.
type loop struct {
	server.Counters
	s        *srv
	id       int
	listenFD int
	pool     *sockutil.Pool // outbound chunks and bound of this loop's connections
	ring     *ring
	bufs     *bufRing // nil when the kernel has no buffer rings: plain recv into conn.own

	conns      []*conn
	free       []int32 // free slots in conns
	starved    []int32 // connections whose recv found the buffer pool empty
	pending    int     // operations submitted whose final completion has not arrived
	generation uint32

	multishotAccept bool
	// multishotRecv is whether recvs may be multishot with a byte limit (Linux 6.17); it is
	// turned off for good when the kernel refuses one.
	multishotRecv bool
	// accepting is kindAccept while an accept is in flight, kindBackoff while its backoff
	// timeout is, and 0 otherwise.
	accepting opKind
	draining  bool
	backoff   timespec // read by the kernel at submission of the backoff timeout
	// acceptRetries counts failed accepts since the last success, so that a storm of EMFILE is
	// logged once when accepting pauses and once when it resumes, not at every retry.
	acceptRetries int
}

// run is the loop's thread. It sets up the ring on this thread (a single-issuer ring belongs to
// the thread that created it), reports setup to Start through ready, and serves until drained.
func (l *loop) run(ready chan<- error) {
	// The thread stays locked until the goroutine returns, so the runtime ends the thread with
	// it rather than handing a thread that owned a ring to other goroutines.
	runtime.LockOSThread()
	if err := l.setup(); err != nil {
		unix.Close(l.listenFD)
		ready <- fmt.Errorf("loop %d: %w", l.id, err)
		return
	}
	ready <- nil
	if err := l.serve(); err != nil {
		l.s.fail(fmt.Errorf("uring: loop %d: %w", l.id, err))
		l.abandon()
		return
	}
	l.teardown()
}

func (l *loop) setup() error {
	r, err := newRing(sqEntries, cqEntries)
	if err != nil {
		return err
	}
	l.ring = r
	if !disableBufRing {
		l.bufs, err = newBufRing(r, bufGroup, poolBuffers, bufSize)
		if errors.Is(err, unix.EINVAL) {
			// Before Linux 5.19 there are no buffer rings: each connection then owns a
			// receive buffer, which costs bufSize per open connection even while it is idle.
			l.s.cfg.Log("uring: loop %d: no provided-buffer rings (%v); receiving into per-connection buffers", l.id, err)
			l.bufs, err = nil, nil
		}
		if err != nil {
			r.close()
			return err
		}
	}
	l.multishotAccept = !disableMultishot
	l.multishotRecv = l.bufs != nil && !disableMultishotRecv
	l.backoff = timespec{nsec: int64(acceptBackoff)}
	return nil
}

// serve is the event loop: submit everything the last batch prepared and wait in one
// io_uring_enter, then handle every completion that is ready, and again.
func (l *loop) serve() error {
	l.push(pollInSQE(l.s.waker.FD(), userData(kindWake, 0, 0)))
	l.armAccept()
	for !l.draining || l.pending > 0 {
		if l.bufs != nil {
			l.bufs.publish()
		}
		if err := l.ring.waitAndReap(l.complete); err != nil {
			return err
		}
		l.retryStarved()
	}
	return nil
}

// wait submits everything queued and waits for completions: up to heldWait in a raw
// io_uring_enter that keeps the loop's P, then, if none came, in one that gives it up. Kernels
// before 5.11 take no timeout for the wait and only ever make the second.
func (r *ring) wait() error {
	if r.canHold() {
		if timedOut, err := r.submitAndWaitHeld(heldWait); err != nil || !timedOut {
			return err
		}
	}
	return r.submitAndWait(true)
}

// waitAndReap is one turn of a loop: wait (above), then hand every completion that is ready to
// complete. EINTR is a signal (the Go runtime sends them) cutting the wait short: the submissions
// went through, so the turn just reaps. EAGAIN and EBUSY mean the kernel wants completions
// reaped before it takes more submissions.
func (r *ring) waitAndReap(complete func(cqe)) error {
	if err := r.wait(); err != nil {
		switch {
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EBUSY):
			if r.reap(complete) == 0 {
				time.Sleep(time.Millisecond) // nothing to reap: do not spin on the error
			}
		default:
			return err
		}
	}
	r.reap(complete)
	return nil
}

func (l *loop) push(e sqe) {
	l.ring.push(e)
	l.pending++
}

// complete handles one completion.
func (l *loop) complete(e cqe) {
	if e.flags&cqeFMore == 0 {
		l.pending-- // a multishot accept stays in flight while the kernel sets F_MORE
	}
	kind, slot, gen := splitUserData(e.userData)
	switch kind {
	case kindWake:
		l.drain()
	case kindAccept:
		l.accepted(e)
	case kindBackoff:
		l.accepting = 0
		l.armAccept()
	case kindCancel:
		// The cancelled operation reports its own completion; nothing to do for this one.
	case kindRecv, kindSend:
		c := l.conns[slot]
		if c == nil || c.gen != gen {
			panic(fmt.Sprintf("uring: completion for slot %d generation %d, which is not in use", slot, gen))
		}
		if kind == kindRecv {
			l.received(c, e)
		} else {
			l.sent(c, e)
		}
		l.finish(c)
	}
}

// armRecv posts a recv for c if it may read: not while the kernel sends from the buffer the recv
// would fill, not after the client's EOF, and not while the outbound is full (backpressure: the
// unread bytes stay in the socket and TCP flow control stops the client).
//
// With provided buffers and room for at least one buffer, the recv is multishot: it stays armed
// and completes once per arrival, so a message costs no recv submission and no new poll of the
// socket. Its byte limit keeps the bound: the kernel ends it once it has received room-bufSize+1
// bytes, and the completion that crosses that limit holds at most one buffer more, so it never
// delivers more than room, however many echoes are still queued meanwhile. Less room than a buffer
// (a small -outbound, or a client that is not keeping up) gets a single recv capped at the room.
func (l *loop) armRecv(c *conn, pollFirst bool) {
	if c.recvArmed || c.readClosed || c.closing || (c.sendArmed && c.sendFrom != fromOutbound) {
		return
	}
	room := c.outbound.Room() // queued() is the outbound alone here: no send from a recv buffer
	if room <= 0 {
		return // sent re-arms the recv once the client has drained some of its echo
	}
	ud := userData(kindRecv, c.slot, c.gen)
	c.recvMultishot = l.multishotRecv && room >= bufSize
	switch {
	case c.recvMultishot:
		limit := uint32(min(room-bufSize+1, math.MaxUint32))
		e := recvMultishotSQE(c.fd, l.bufs.group, limit, pollFirst, ud)
		if refuseMultishotRecv {
			e.ioprio |= 1 << 15 // a flag no kernel knows: EINVAL, as from a kernel before 6.17
		}
		l.push(e)
	case l.bufs != nil:
		// The length caps what the kernel copies, so a recv never overfills the outbound.
		l.push(recvSelectSQE(c.fd, min(bufSize, room), l.bufs.group, pollFirst, ud))
	default:
		if c.own == nil {
			c.own = make([]byte, bufSize)
		}
		l.push(recvSQE(c.fd, c.own[:min(bufSize, room)], ud))
	}
	c.recvArmed = true
}

// retryStarved posts again the recvs that found the buffer pool empty, now that the batch has
// returned its buffers. Poll-first keeps them from taking a buffer before data is there.
func (l *loop) retryStarved() {
	for _, slot := range l.starved {
		if c := l.conns[slot]; c != nil {
			l.armRecv(c, true)
		}
	}
	l.starved = l.starved[:0]
}

// received handles a recv completion: by now the kernel has both waited for the data and copied
// it into our memory.
func (l *loop) received(c *conn, e cqe) {
	if c.sendArmed && c.sendInline {
		// More for c in this batch: whatever it brings (an echo to queue behind the send, the
		// end of the recv, EOF) needs the send's completion, so the loop must not sleep on it.
		l.ring.dropInline()
	}
	if e.flags&cqeFMore == 0 {
		c.recvArmed = false // a multishot recv stays armed while the kernel sets F_MORE
	}
	bid := fromOwn
	if e.flags&cqeFBuffer != 0 {
		bid = int(e.flags >> cqeBufferShift)
	}
	switch {
	case e.res > 0:
		l.Read(int(e.res))
		if c.closing {
			l.release(bid)
			return
		}
		if !l.s.handler.Idle() {
			l.s.handler.Handle(l.recvBuf(c, bid)[:e.res])
		}
		l.echo(c, bid, int(e.res))
		l.armRecv(c, false)
	case e.res == 0:
		// The client shut down its side. finish closes once the echo has drained.
		l.release(bid)
		c.readClosed = true
	default:
		l.release(bid)
		switch syscall.Errno(-e.res) {
		case unix.ENOBUFS:
			// The pool was empty when data arrived; the data is still in the socket.
			if !c.closing {
				l.starved = append(l.starved, c.slot)
			}
		case unix.EINTR, unix.EAGAIN:
			l.armRecv(c, false)
		case unix.EINVAL:
			if !c.recvMultishot || c.closing {
				l.abort(c)
				return
			}
			// A kernel before 6.17 has no byte limit for a multishot recv (before 6.0, no
			// multishot recv): from now on this loop posts one recv per arrival. Every
			// multishot recv of the batch fails alike; the first says so.
			if l.multishotRecv {
				l.s.cfg.Log("uring: loop %d: multishot recv with a byte limit unsupported (%v); using single recvs",
					l.id, syscall.Errno(-e.res))
				l.multishotRecv = false
			}
			l.armRecv(c, false)
		default:
			// ECONNRESET, ETIMEDOUT, or ECANCELED from our own cancel: the connection is over.
			l.abort(c)
		}
	}
}

// echo sends back the n bytes the kernel received into buffer bid. If nothing is waiting ahead of
// them, it sends straight from that buffer with MSG_DONTWAIT: the kernel copies them into the
// socket at once or reports how far it got, so the buffer goes back to the pool within this
// batch. Only when the client is not keeping up are the bytes copied into the connection's
// outbound.
func (l *loop) echo(c *conn, bid int, n int) {
	data := l.recvBuf(c, bid)[:n]
	if !c.sendArmed && c.queued() == 0 {
		c.sendArmed, c.sendFrom, c.sendLen = true, bid, n
		e := sendSQE(c.fd, data, unix.MSG_DONTWAIT, userData(kindSend, c.slot, c.gen))
		l.pending++
		// Only while a multishot recv stays armed does nothing of c wait for this send's
		// completion; received drops the wait if a later completion of c changes that.
		c.sendInline = c.recvArmed && c.recvMultishot && l.ring.inlineQueued() < inlineWaitMax
		if c.sendInline {
			l.ring.pushInline(e)
		} else {
			l.ring.push(e)
		}
		return
	}
	c.outbound.Append(data)
	l.release(bid)
	if !c.sendArmed {
		l.sendOutbound(c)
	}
}

func (l *loop) recvBuf(c *conn, bid int) []byte {
	if bid == fromOwn {
		return c.own
	}
	return l.bufs.buf(uint16(bid))
}

// release returns provided buffer bid to the kernel's pool.
func (l *loop) release(bid int) {
	if bid >= 0 {
		l.bufs.put(uint16(bid))
	}
}

// sendOutbound posts one send of the oldest chunk of c's outbound. Without MSG_DONTWAIT the
// kernel waits until the socket has room, so a client that does not read costs one parked
// operation, not a retry loop; sent posts the next chunk when this one is done.
func (l *loop) sendOutbound(c *conn) {
	p := c.outbound.Pending()
	c.sendArmed, c.sendFrom, c.sendLen = true, fromOutbound, len(p)
	l.push(sendSQE(c.fd, p, 0, userData(kindSend, c.slot, c.gen)))
}

// sent handles a send completion: the kernel has copied res bytes into the socket.
func (l *loop) sent(c *conn, e cqe) {
	c.sendArmed, c.sendInline = false, false
	n := int(e.res)
	if e.res < 0 {
		n = 0
		switch err := syscall.Errno(-e.res); {
		case err == unix.EAGAIN && c.sendFrom != fromOutbound:
			// The socket was full for a MSG_DONTWAIT send: queue it all below.
		case err == unix.EINTR:
		default:
			// EPIPE, ECONNRESET, or ECANCELED from our own cancel: the client is gone.
			l.release(c.sendFrom)
			l.abort(c)
			return
		}
	}
	l.Wrote(n)
	if c.sendFrom == fromOutbound {
		c.outbound.Consume(n)
	} else {
		if n < c.sendLen && !c.closing {
			// A short send: the socket's buffer is full. Keep the rest ourselves so the
			// provided buffer can go back to the pool now.
			c.outbound.Append(l.recvBuf(c, c.sendFrom)[n:c.sendLen])
		}
		l.release(c.sendFrom)
	}
	c.sendFrom = fromOutbound
	if c.closing {
		return
	}
	if c.queued() > 0 {
		l.sendOutbound(c)
	}
	l.armRecv(c, false)
}

// abort ends a connection that failed or that the server is closing: it cancels the operations
// still in flight, and finish closes the socket once their completions are in.
func (l *loop) abort(c *conn) {
	if c.closing {
		return
	}
	c.closing = true
	if c.recvArmed {
		l.push(cancelSQE(userData(kindRecv, c.slot, c.gen), userData(kindCancel, 0, 0)))
	}
	if c.sendArmed {
		l.push(cancelSQE(userData(kindSend, c.slot, c.gen), userData(kindCancel, 0, 0)))
	}
}

// finish closes c when it is done: aborted with nothing left in flight, or half-closed by the
// client with its whole echo sent. Closing only then means no operation can outlive the fd and
// act on whatever socket reuses its number.
func (l *loop) finish(c *conn) {
	if c.recvArmed || c.sendArmed {
		return
	}
	if !c.closing && !(c.readClosed && c.queued() == 0) {
		return
	}
	// close(2) on a TCP socket does not block (no SO_LINGER), so it is not worth an SQE.
	unix.Close(c.fd)
	c.outbound.Release()
	l.conns[c.slot] = nil
	l.free = append(l.free, c.slot)
	l.Closed()
}

// drain begins shutting the loop down: stop accepting, abort every connection. serve returns once
// every operation's completion has been reaped, and only then are buffers freed.
func (l *loop) drain() {
	if l.draining {
		return
	}
	l.draining = true
	if l.accepting != 0 {
		l.push(cancelSQE(userData(l.accepting, 0, 0), userData(kindCancel, 0, 0)))
	}
	for _, c := range l.conns {
		if c != nil {
			l.abort(c)
			l.finish(c)
		}
	}
}

// teardown frees what a drained loop owns. Nothing is in flight any more.
func (l *loop) teardown() {
	if l.bufs != nil {
		l.bufs.unregister(l.ring)
		l.bufs.unmap()
	}
	l.ring.close()
	unix.Close(l.listenFD)
}

// abandon frees what a loop owns after io_uring_enter itself failed and completions can no longer
// be reaped. Closing the ring makes the kernel cancel everything in it; the provided buffers are
// left mapped, because an operation being torn down could still write into them.
func (l *loop) abandon() {
	for _, c := range l.conns {
		if c != nil {
			unix.Close(c.fd)
			l.Closed()
		}
	}
	l.ring.close()
	unix.Close(l.listenFD)
}
