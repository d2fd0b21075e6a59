package uring

// This file is the UDP variant (-udp): start and close, then the loop of each ring in data-flow
// order, as server_linux.go and loop_linux.go are for TCP. doc.go's UDP paragraph states its
// costs and bounds.

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// Sizes of one UDP loop's rings and datagram buffers.
const (
	// udpBuffers caps the datagram buffers of one loop, 16 MiB of address space, touched as it is
	// used. A buffer is held from the datagram's arrival until its echo's send completes, so the
	// buffers bound the replies a loop holds (udpBuffersPerLoop keeps the server's total within
	// sockutil.ReplyQueueLimit); with every one held, datagrams wait in the socket.
	udpBuffers = 256
	// udpNameSize is the room for a sender's address: a sockaddr_in6, the larger family.
	udpNameSize = unix.SizeofSockaddrInet6
	// udpPayloadAt is where a datagram's bytes start in its buffer, behind the header a multishot
	// recvmsg writes and the sender's address; a single recvmsg is given the same layout, so the
	// send path does not care which one filled the buffer.
	udpPayloadAt = recvmsgOutSize + udpNameSize
	// udpSlotSize is one datagram buffer: room for the largest datagram, never truncated.
	udpSlotSize = udpPayloadAt + sockutil.MaxDatagram
	// udpSQEntries and udpCQEntries size the rings. A loop has in flight at most one send per
	// buffer, its recvs (singleRecvs at most), a cancel for each of those and its wake poll; a
	// multishot recv's completions each hold a buffer, so they are covered by the buffer count.
	udpSQEntries = 2 * udpBuffers
	udpCQEntries = 4 * udpBuffers
	// singleRecvs is how many recvmsgs a loop keeps armed where the kernel has no multishot
	// recvmsg. Each one waiting on an empty socket is a poll on it, and an arrival wakes every
	// poll while only one finds the datagram, so a few are enough to take a burst per wake.
	singleRecvs = 4
)

// udpBuffersPerLoop is how many datagram buffers each of n loops gets: the server's share of
// sockutil.ReplyQueueLimit, as a power of two (a buffer ring's size must be one), at most
// udpBuffers, at least one.
func udpBuffersPerLoop(n int) uint16 {
	share := min(sockutil.ReplyQueueLimit/n, udpBuffers, int(poolBuffers))
	count := 1
	for count*2 <= share {
		count *= 2
	}
	return uint16(count)
}

// slotState is where a datagram buffer is.
type slotState uint8

const (
	slotFree slotState = iota // in the loop's free list (single recvmsgs)
	slotRing                  // in the kernel's buffer ring, for the multishot recvmsg to take
	slotRecv                  // a single recvmsg into it is in flight
	slotSend                  // its echo's sendmsg is in flight
)

// udpSlot is what the kernel reads besides a datagram buffer's bytes: the msghdr and iovec of the
// recvmsg or sendmsg in flight on it. They sit in the Go heap, in the loop's slots, which stay
// reachable and in place until the loop is torn down.
type udpSlot struct {
	msg   unix.Msghdr
	iov   unix.Iovec
	state slotState
}

type udpSrv struct {
	server.Lifecycle
	cfg   server.Config
	fd    int // the one UDP socket every loop receives from and sends on
	addr  *net.UDPAddr
	loops []*udpLoop
	wg    sync.WaitGroup
	waker *sockutil.Waker // as in the TCP server: wakes every loop for Close
}

// startUDP binds one UDP socket and starts the loops, each on its own OS thread with its own
// ring, all receiving from that socket: the kernel hands each datagram to one of them.
func startUDP(cfg server.Config) (server.Server, error) {
	if err := available(); err != nil {
		return nil, fmt.Errorf("uring: %w: %w", server.ErrUnavailable, err)
	}
	n := cfg.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	// Blocking, for the reason start gives for the TCP listeners.
	fd, addr, err := sockutil.ListenUDP(cfg.Addr, false)
	if err != nil {
		return nil, fmt.Errorf("uring: %w", err)
	}
	waker, err := sockutil.NewWaker()
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uring: %w", err)
	}
	s := &udpSrv{cfg: cfg, fd: fd, addr: addr, waker: waker}
	ready := make(chan error, n)
	for i := range n {
		l := &udpLoop{s: s, id: i, fd: fd, handler: cfg.Handler()}
		s.loops = append(s.loops, l)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run(udpBuffersPerLoop(n), ready)
		}()
	}
	var setupErr error
	for range n {
		if err := <-ready; err != nil && setupErr == nil {
			setupErr = err
		}
	}
	go func() {
		s.wg.Wait()
		// The socket outlives every loop that might still submit an operation on it.
		unix.Close(s.fd)
		s.waker.Close()
		s.Stopped()
	}()
	if setupErr != nil {
		s.Close()
		return nil, fmt.Errorf("uring: %w", setupErr)
	}
	return s, nil
}

func (s *udpSrv) Addr() net.Addr { return s.addr }

func (s *udpSrv) Stats() server.Stats {
	var st server.Stats
	for _, l := range s.loops {
		st = st.Add(l.Snapshot())
	}
	return st
}

// Close wakes every loop, which cancels its operations, reaps their completions and frees its
// ring and buffers, then waits until every loop's thread has returned and the socket is closed.
func (s *udpSrv) Close() error {
	if s.BeginClose() {
		s.wake()
	}
	return s.Wait()
}

func (s *udpSrv) fail(err error) {
	s.cfg.Log("%v", err)
	if s.Fail(err) {
		s.wake()
	}
}

func (s *udpSrv) wake() {
	if err := s.waker.Wake(); err != nil {
		s.cfg.Log("uring: %v", err)
	}
}

// udpLoop is one ring and its datagram buffers. Only its own locked OS thread touches it.
type udpLoop struct {
	server.Counters
	s       *udpSrv
	id      int
	fd      int
	handler server.Handler // cfg's per-message cost, run inline on this loop
	ring    *ring
	bufs    *bufRing // the datagram buffers as a provided-buffer ring; nil on kernels without one
	mem     []byte   // the datagram buffers when bufs is nil: an anonymous mmap, outside the Go heap
	slots   []udpSlot
	free    []uint16 // buffers free for single recvmsgs

	// multishot is whether datagrams arrive through one multishot recvmsg from bufs (Linux
	// 6.0); it is turned off for good when the kernel refuses one.
	multishot bool
	template  unix.Msghdr // what a multishot recvmsg reads: the room for the sender's address
	inRing    int         // buffers in the kernel's ring, for the multishot recvmsg to take
	recvs     int         // recvmsgs in flight
	pending   int         // operations submitted whose final completion has not arrived
	inlineMax uint32      // echoes per batch submitted with pushInline (loop_linux.go's inlineWaitMax)
	draining  bool

	sendTrouble sockutil.LogBurst // replies the kernel refused
}

// run is the loop's thread, as loop.run is for TCP.
func (l *udpLoop) run(buffers uint16, ready chan<- error) {
	runtime.LockOSThread()
	if err := l.setup(buffers); err != nil {
		ready <- fmt.Errorf("loop %d: %w", l.id, err)
		return
	}
	ready <- nil
	if err := l.serve(); err != nil {
		l.s.fail(fmt.Errorf("uring: udp loop %d: %w", l.id, err))
		l.abandon()
		return
	}
	l.teardown()
}

func (l *udpLoop) setup(buffers uint16) error {
	r, err := newRing(udpSQEntries, udpCQEntries)
	if err != nil {
		return err
	}
	l.ring = r
	if !disableBufRing {
		l.bufs, err = newBufRing(r, bufGroup, buffers, udpSlotSize)
		if errors.Is(err, unix.EINVAL) {
			// Before Linux 5.19: no buffer rings, so no multishot recvmsg either.
			l.s.cfg.Log("uring: udp loop %d: no provided-buffer rings (%v); using single recvmsgs", l.id, err)
			l.bufs, err = nil, nil
		}
		if err != nil {
			r.close()
			return err
		}
	}
	if l.bufs == nil {
		prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS
		if l.mem, err = unix.Mmap(-1, 0, int(buffers)*udpSlotSize, prot, flags); err != nil {
			r.close()
			return fmt.Errorf("mmap %d datagram buffers of %d bytes: %w", buffers, udpSlotSize, err)
		}
	}
	l.slots = make([]udpSlot, buffers)
	l.multishot = l.bufs != nil && !disableMultishotRecv
	if l.multishot {
		// newBufRing has given every buffer to the kernel.
		for i := range l.slots {
			l.slots[i].state = slotRing
		}
		l.inRing = len(l.slots)
	} else {
		l.freeAll()
	}
	l.template = unix.Msghdr{Namelen: udpNameSize}
	l.inlineMax = uint32(max(buffers/4, 1))
	return nil
}

// freeAll puts every buffer the kernel's ring holds on the free list, for single recvmsgs.
func (l *udpLoop) freeAll() {
	for i := range l.slots {
		if l.slots[i].state == slotRing || l.slots[i].state == slotFree {
			l.slots[i].state = slotFree
			l.free = append(l.free, uint16(i))
		}
	}
	l.inRing = 0
}

func (l *udpLoop) buf(bid int) []byte {
	if l.bufs != nil {
		return l.bufs.buf(uint16(bid))
	}
	off := bid * udpSlotSize
	return l.mem[off : off+udpSlotSize : off+udpSlotSize]
}

// serve is the event loop: submit everything the last batch prepared and wait in one
// io_uring_enter, then handle every completion that is ready, and again.
func (l *udpLoop) serve() error {
	l.push(pollInSQE(l.s.waker.FD(), userData(kindWake, 0, 0)))
	l.armRecvs()
	for !l.draining || l.pending > 0 {
		if l.bufs != nil {
			l.bufs.publish()
		}
		if l.recvs == 0 {
			// No recv would wake the loop (every buffer is held by an echo in flight): the
			// echoes' own completions must, to give their buffers back.
			l.ring.dropInline()
		}
		if err := l.ring.waitAndReap(l.complete); err != nil {
			return err
		}
	}
	return nil
}

func (l *udpLoop) push(e sqe) {
	l.ring.push(e)
	l.pending++
}

// complete handles one completion.
func (l *udpLoop) complete(e cqe) {
	if e.flags&cqeFMore == 0 {
		l.pending-- // a multishot recvmsg stays in flight while the kernel sets F_MORE
	}
	kind, slot, _ := splitUserData(e.userData)
	switch kind {
	case kindWake:
		l.drain()
	case kindCancel:
		// The cancelled operation reports its own completion.
	case kindRecv:
		l.received(int(slot), e)
	case kindSend:
		l.sent(int(slot), e)
	}
}

// armRecvs keeps the loop receiving: one multishot recvmsg while the kernel's ring has a buffer
// for it, or up to singleRecvs single recvmsgs into free buffers. With neither, datagrams wait in
// the socket until an echo gives its buffer back (release calls here).
func (l *udpLoop) armRecvs() {
	if l.draining {
		return
	}
	if l.multishot {
		if l.recvs > 0 || l.inRing == 0 {
			return
		}
		e := recvmsgMultishotSQE(l.fd, &l.template, l.bufs.group, userData(kindRecv, 0, 0))
		if refuseMultishotRecv {
			e.ioprio |= 1 << 15 // a flag no kernel knows: EINVAL, as from a kernel before 6.0
		}
		l.push(e)
		l.recvs++
		return
	}
	for l.recvs < singleRecvs && len(l.free) > 0 {
		bid := l.free[len(l.free)-1]
		l.free = l.free[:len(l.free)-1]
		sl, buf := &l.slots[bid], l.buf(int(bid))
		sl.iov = unix.Iovec{Base: &buf[udpPayloadAt]}
		sl.iov.SetLen(sockutil.MaxDatagram)
		sl.msg = unix.Msghdr{Name: &buf[recvmsgOutSize], Namelen: udpNameSize, Iov: &sl.iov}
		sl.msg.SetIovlen(1)
		sl.state = slotRecv
		l.push(recvmsgSQE(l.fd, &sl.msg, userData(kindRecv, int32(bid), 0)))
		l.recvs++
	}
}

// received handles a recvmsg completion: by now the kernel has waited for the datagram and copied
// it, and its sender's address, into one of our buffers.
func (l *udpLoop) received(slot int, e cqe) {
	if e.flags&cqeFMore == 0 {
		l.recvs--
	}
	if e.res < 0 {
		l.recvFailed(slot, syscall.Errno(-e.res))
		return
	}
	bid, n, truncated := slot, int(e.res), false
	if l.multishot {
		if e.flags&cqeFBuffer == 0 {
			l.armRecvs() // the multishot recvmsg ended without a datagram: arm another
			return
		}
		bid = int(e.flags >> cqeBufferShift)
		l.inRing--
		out := (*recvmsgOut)(unsafe.Pointer(&l.buf(bid)[0]))
		n, truncated = int(out.payloadlen), out.flags&unix.MSG_TRUNC != 0
	}
	l.Received(n)
	if truncated || l.draining {
		// A datagram larger than its buffer could only be echoed in part, never more than
		// received but not what was received either; none is, since a buffer holds MaxDatagram.
		l.Dropped()
		l.release(bid)
	} else {
		l.echo(bid, n)
	}
	if e.flags&cqeFMore == 0 {
		l.armRecvs()
	}
}

// recvFailed handles a recvmsg that ended with an error.
func (l *udpLoop) recvFailed(slot int, err syscall.Errno) {
	if !l.multishot {
		l.release(slot) // a single recvmsg's buffer was ours, and it holds nothing
	}
	switch {
	case err == unix.ECANCELED && l.draining:
		// Our own cancel.
	case err == unix.ENOBUFS && l.multishot:
		// The kernel's ring was empty when a datagram arrived; it waits in the socket, and
		// release arms the recvmsg again when an echo gives its buffer back.
		l.armRecvs()
	case err == unix.EINTR, err == unix.EAGAIN, err == unix.ECANCELED:
		l.armRecvs()
	case err == unix.EINVAL && l.multishot:
		// A kernel before 6.0 has no multishot recvmsg: from now on this loop keeps single
		// recvmsgs armed, into buffers it picks itself (the kernel's ring goes unused).
		l.s.cfg.Log("uring: udp loop %d: multishot recvmsg unsupported (%v); using single recvmsgs", l.id, err)
		l.multishot = false
		l.freeAll()
		l.armRecvs()
	default:
		l.s.fail(fmt.Errorf("uring: udp loop %d: recvmsg on fd %d: %w", l.id, l.fd, err))
	}
}

// echo runs the handler on the datagram in buffer bid, then sends it back to its sender straight
// from that buffer, with MSG_DONTWAIT: the kernel takes the datagram at once or says EAGAIN, so in
// the common case the buffer is free again when the loop next wakes.
func (l *udpLoop) echo(bid int, n int) {
	buf := l.buf(bid)
	if !l.handler.Idle() {
		l.handler.Handle(buf[udpPayloadAt : udpPayloadAt+n])
	}
	sl := &l.slots[bid]
	sl.iov = unix.Iovec{Base: &buf[udpPayloadAt]}
	sl.iov.SetLen(n)
	sl.msg = unix.Msghdr{Name: &buf[recvmsgOutSize], Namelen: nameLen(buf[recvmsgOutSize:udpPayloadAt]), Iov: &sl.iov}
	sl.msg.SetIovlen(1)
	sl.state = slotSend
	e := sendmsgSQE(l.fd, &sl.msg, unix.MSG_DONTWAIT, userData(kindSend, int32(bid), 0))
	l.pending++
	if l.ring.inlineQueued() < l.inlineMax {
		l.ring.pushInline(e)
	} else {
		l.ring.push(e)
	}
}

// nameLen is the length of the sender's address the kernel wrote into name, from its family.
func nameLen(name []byte) uint32 {
	if *(*uint16)(unsafe.Pointer(&name[0])) == unix.AF_INET {
		return unix.SizeofSockaddrInet4
	}
	return unix.SizeofSockaddrInet6
}

// sent handles a sendmsg completion.
func (l *udpLoop) sent(bid int, e cqe) {
	switch err := syscall.Errno(-e.res); {
	case e.res >= 0:
		l.Sent(int(e.res))
		l.sendTrouble.End(l.s.cfg.Log, "uring: udp loop %d: sendmsg works again", l.id)
	case (err == unix.EAGAIN || err == unix.EINTR) && !l.draining:
		// The socket's send buffer was full: send again without MSG_DONTWAIT, and the kernel
		// waits for room. The buffer stays held meanwhile, which is what bounds such replies.
		l.push(sendmsgSQE(l.fd, &l.slots[bid].msg, 0, userData(kindSend, int32(bid), 0)))
		return
	default:
		// ENOBUFS, EPERM from a firewall, an unreachable network, or ECANCELED from Close:
		// this reply is lost, as a datagram may be.
		l.Dropped()
		if err != unix.ECANCELED {
			l.sendTrouble.Begin(l.s.cfg.Log, "uring: udp loop %d: sendmsg on fd %d: %v; dropping the reply", l.id, l.fd, err)
		}
	}
	l.release(bid)
}

// release gives buffer bid back: to the kernel's ring, or to the free list.
func (l *udpLoop) release(bid int) {
	if l.multishot {
		l.slots[bid].state = slotRing
		l.bufs.put(uint16(bid))
		l.inRing++
	} else {
		l.slots[bid].state = slotFree
		l.free = append(l.free, uint16(bid))
	}
	l.armRecvs()
}

// drain begins shutting the loop down: it cancels every recvmsg and sendmsg in flight, and serve
// returns once their completions have been reaped.
func (l *udpLoop) drain() {
	if l.draining {
		return
	}
	l.draining = true
	cancel := func(kind opKind, bid int) {
		l.push(cancelSQE(userData(kind, int32(bid), 0), userData(kindCancel, 0, 0)))
	}
	if l.multishot && l.recvs > 0 {
		cancel(kindRecv, 0)
	}
	for bid, sl := range l.slots {
		switch sl.state {
		case slotRecv:
			cancel(kindRecv, bid)
		case slotSend:
			// A send waits for nothing but room in the local send buffer, which drains by
			// itself; cancelling it all the same keeps Close from depending on that.
			cancel(kindSend, bid)
		}
	}
}

// teardown frees what a drained loop owns. Nothing is in flight any more.
func (l *udpLoop) teardown() {
	if l.bufs != nil {
		l.bufs.unregister(l.ring)
		l.bufs.unmap()
	} else {
		unix.Munmap(l.mem)
	}
	l.ring.close()
}

// abandon is loop.abandon: after io_uring_enter itself failed, the ring is closed and the buffers
// are left mapped, because an operation being torn down could still write into them.
func (l *udpLoop) abandon() {
	l.ring.close()
}
