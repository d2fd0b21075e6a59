package sockutil

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw UDP path of event loops: recvmmsg(2) and sendmmsg(2), a batch of datagrams per call,
// where TCP's loops make one read(2) and one sendto(2) per message. Both are made with
// RawSyscall, as ReadNonblock and SendNonblock are (see the package documentation, "Two syscall
// paths"), and both pass MSG_DONTWAIT, so a call never sleeps even on a socket that was opened
// blocking: a raw call that slept would hold the loop's P for as long as it did.

// Datagrams is one event loop's batch for recvmmsg and sendmmsg. Each slot has a buffer of
// MaxDatagram bytes, so no datagram is ever truncated, and room for the address it came from, so
// a batch is sent back from where it was read: a reply is the bytes received, to their sender,
// with no copy in user space. The buffers are one allocation that the kernel writes into only as
// far as each datagram reaches, so a batch of small datagrams keeps little of it resident. It
// belongs to one loop and takes no lock.
type Datagrams struct {
	bufs    []byte                  // slot i is bufs[i*MaxDatagram:][:MaxDatagram]
	senders []unix.RawSockaddrInet6 // slot i's sender; an IPv4 address fits in it too
	iovs    []unix.Iovec
	hdrs    []unix.Mmsghdr
}

// NewDatagrams returns a batch of n slots (at least one).
func NewDatagrams(n int) *Datagrams {
	n = max(n, 1)
	d := &Datagrams{
		bufs:    make([]byte, n*MaxDatagram),
		senders: make([]unix.RawSockaddrInet6, n),
		iovs:    make([]unix.Iovec, n),
		hdrs:    make([]unix.Mmsghdr, n),
	}
	for i := range d.hdrs {
		d.iovs[i].Base = &d.bufs[i*MaxDatagram]
		d.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&d.senders[i]))
		d.hdrs[i].Hdr.Iov = &d.iovs[i]
		d.hdrs[i].Hdr.SetIovlen(1)
	}
	return d
}

// Cap is how many datagrams one Recv may take.
func (d *Datagrams) Cap() int { return len(d.hdrs) }

// Recv fills the batch from fd with one recvmmsg(2) and returns how many datagrams it took, at
// least one, or EAGAIN when none is waiting. An empty datagram is a datagram: Payload returns it
// empty.
func (d *Datagrams) Recv(fd int) (int, error) {
	for i := range d.hdrs {
		// The kernel writes back each sender's address length, and SendBack set each iovec to
		// its reply's length: both are reset to the full slot.
		d.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		d.iovs[i].SetLen(MaxDatagram)
	}
	return mmsg(unix.SYS_RECVMMSG, fd, d.hdrs)
}

// Payload is datagram i of the last Recv, exactly as received.
func (d *Datagrams) Payload(i int) []byte {
	return d.bufs[i*MaxDatagram:][:d.hdrs[i].Len]
}

// SendBack sends datagrams [from, to) of the last Recv back to their senders, each exactly as it
// was received, with one sendmmsg(2), and returns how many the kernel took. sendmmsg stops at the
// first datagram it cannot send: if that is the first, the call fails with its error (EAGAIN when
// the socket's send buffer is full); if a later one, it returns the count so far and says nothing
// of why, so the caller learns the reason, if it needs one, from a call that starts there.
func (d *Datagrams) SendBack(fd, from, to int) (int, error) {
	if from >= to {
		return 0, nil
	}
	for i := from; i < to; i++ {
		d.iovs[i].SetLen(int(d.hdrs[i].Len))
	}
	return mmsg(unix.SYS_SENDMMSG, fd, d.hdrs[from:to])
}

// sender is the address datagram i came from, with its length as the kernel wrote it.
func (d *Datagrams) sender(i int) (unix.RawSockaddrInet6, uint32) {
	return d.senders[i], d.hdrs[i].Hdr.Namelen
}

// mmsg makes recvmmsg(2) or sendmmsg(2) (call) on fd over hdrs, with MSG_DONTWAIT and no timeout,
// and returns the number of datagrams moved.
func mmsg(call uintptr, fd int, hdrs []unix.Mmsghdr) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall6(call, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			// A signal arrived before the first datagram was moved: nothing was read or sent.
			// (One that arrives later ends the call early with the count so far, not EINTR.)
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// ReplyQueue holds the replies an event loop has read but could not send yet, because its
// socket's send buffer was full: at most its limit, which the loops of one server share
// ReplyQueueLimit between, each reply a copy of its datagram with its sender's address. Past the
// limit Hold refuses, and the caller counts the datagram dropped. It belongs to one loop and
// takes no lock.
type ReplyQueue struct {
	ring    [ReplyQueueLimit]reply
	limit   int // replies held at most, no more than len(ring)
	head, n int
	// One sendmmsg's headers over the queue's head; their size is the batch NewReplyQueue
	// was given.
	iovs []unix.Iovec
	hdrs []unix.Mmsghdr
}

type reply struct {
	payload []byte
	to      unix.RawSockaddrInet6
	toLen   uint32
}

// NewReplyQueue returns an empty queue that holds up to limit replies (at least one, at most
// ReplyQueueLimit) and sends up to batch of them per sendmmsg(2).
func NewReplyQueue(batch, limit int) *ReplyQueue {
	batch = max(1, min(batch, ReplyQueueLimit))
	return &ReplyQueue{
		limit: max(1, min(limit, ReplyQueueLimit)),
		iovs:  make([]unix.Iovec, batch),
		hdrs:  make([]unix.Mmsghdr, batch),
	}
}

// Len is how many replies are waiting.
func (q *ReplyQueue) Len() int { return q.n }

// Hold queues a copy of datagram i of d as a reply to its sender, and reports false, holding
// nothing, when the queue is full. A held copy is its own allocation, let go once it is sent, so
// that a burst's memory goes back to the garbage collector when the burst is over.
func (q *ReplyQueue) Hold(d *Datagrams, i int) bool {
	if q.n == q.limit {
		return false
	}
	r := &q.ring[(q.head+q.n)%len(q.ring)]
	r.payload = append([]byte(nil), d.Payload(i)...)
	r.to, r.toLen = d.sender(i)
	q.n++
	return true
}

// Send sends replies from the head of the queue with one sendmmsg(2), removes those the kernel
// took, calling sent with each one's size, and returns how many it removed. As with SendBack, it
// fails with the head's error only when the head itself could not be sent: EAGAIN means the socket
// is full again; after any other error the caller decides whether to Drop the head.
func (q *ReplyQueue) Send(fd int, sent func(size int)) (int, error) {
	k := min(q.n, len(q.hdrs))
	if k == 0 {
		return 0, nil
	}
	for j := range k {
		r := &q.ring[(q.head+j)%len(q.ring)]
		q.iovs[j] = unix.Iovec{}
		if len(r.payload) > 0 {
			q.iovs[j].Base = &r.payload[0]
		}
		q.iovs[j].SetLen(len(r.payload))
		q.hdrs[j] = unix.Mmsghdr{}
		q.hdrs[j].Hdr.Name = (*byte)(unsafe.Pointer(&r.to))
		q.hdrs[j].Hdr.Namelen = r.toLen
		q.hdrs[j].Hdr.Iov = &q.iovs[j]
		q.hdrs[j].Hdr.SetIovlen(1)
	}
	n, err := mmsg(unix.SYS_SENDMMSG, fd, q.hdrs[:k])
	clear(q.iovs[:k]) // so that the headers do not keep sent payloads from the garbage collector
	for range n {
		sent(len(q.ring[q.head].payload))
		q.Drop()
	}
	return n, err
}

// Drop removes the reply at the head of the queue unsent.
func (q *ReplyQueue) Drop() {
	if q.n == 0 {
		return
	}
	q.ring[q.head] = reply{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
}
