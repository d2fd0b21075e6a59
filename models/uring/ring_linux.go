package uring

// This file is the io_uring ABI, written against golang.org/x/sys/unix: the structs the kernel
// shares with us (include/uapi/linux/io_uring.h), ring setup and mapping, submission, reaping, and
// the provided-buffer ring. It knows nothing about echo servers.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes, flags and register codes from include/uapi/linux/io_uring.h, only those this model uses.
const (
	opPollAdd     = 6
	opTimeout     = 11
	opAccept      = 13
	opAsyncCancel = 14
	opSend        = 26
	opRecv        = 27

	sqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT: the kernel picks the buffer when data arrives

	setupCQSize        = 1 << 3
	setupSubmitAll     = 1 << 7
	setupCoopTaskrun   = 1 << 8
	setupSingleIssuer  = 1 << 12
	setupDeferTaskrun  = 1 << 13
	enterGetEvents     = 1 << 0
	enterExtArg        = 1 << 3
	featSingleMmap     = 1 << 0
	featNoDrop         = 1 << 1
	featFastPoll       = 1 << 5
	featExtArg         = 1 << 8
	cqeFBuffer         = 1 << 0
	cqeFMore           = 1 << 1
	cqeBufferShift     = 16
	acceptMultishot    = 1 << 0 // in sqe.ioprio
	recvsendPollFirst  = 1 << 0 // in sqe.ioprio
	recvMultishot      = 1 << 1 // in sqe.ioprio
	registerProbe      = 8
	registerPbufRing   = 22
	unregisterPbufRing = 23
	opSupported        = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// sqe is struct io_uring_sqe: 64 bytes, one operation for the kernel to start.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags, accept_flags, timeout_flags, poll32_events, cancel_flags
	userData    uint64
	bufGroup    uint16
	personality uint16
	spliceFdIn  int32 // also optlen: a multishot recv's byte limit
	addr3       uint64
	_           uint64
}

// cqe is struct io_uring_cqe: 16 bytes, one finished operation. res is what the syscall would
// have returned, or -errno.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

type timespec struct{ sec, nsec int64 }

// getEventsArg is struct io_uring_getevents_arg, what io_uring_enter reads with
// IORING_ENTER_EXT_ARG (Linux 5.11): here only a timeout for the wait.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	_         uint32
	ts        uint64 // address of a timespec
}

func init() {
	// A wrong layout would have the kernel read garbage; fail at once rather than mysteriously.
	if unsafe.Sizeof(sqe{}) != 64 || unsafe.Sizeof(cqe{}) != 16 || unsafe.Sizeof(params{}) != 120 {
		panic("uring: io_uring struct layout does not match the kernel's")
	}
}

// ring is one io_uring instance: a submission queue we fill and a completion queue the kernel
// fills, both in memory shared with the kernel. Only the thread that created it may use it
// (IORING_SETUP_SINGLE_ISSUER).
type ring struct {
	fd       int
	features uint32
	ringMem  []byte // SQ and CQ rings (one mapping with IORING_FEAT_SINGLE_MMAP)
	cqMem    []byte // CQ ring when the kernel wants a separate mapping
	sqeMem   []byte

	sqHead, sqTail *uint32 // the kernel's view: it advances head, we publish tail
	sqMask         uint32
	sqEntries      uint32
	sqes           []sqe
	tail           uint32 // our tail: SQEs written but not yet published
	// inline counts the SQEs queued since the last publish whose completions the kernel posts
	// while it submits them (pushInline), which the next wait does not count as news.
	inline uint32

	// backlog holds SQEs prepared while the submission queue was full. It is moved into the
	// queue before each io_uring_enter. Each connection has at most four operations in flight
	// (a recv, a send, and the two cancels abort posts for them), and the loop itself at most
	// three (its accept or backoff timeout, the wake poll, and a cancel for the accept), so its
	// length is bounded by four times the connections plus three.
	backlog []sqe

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	// heldTimeout and heldArg are what a held wait hands the kernel. They live in the ring, on
	// the heap, so the address in heldArg.ts stays valid and reachable.
	heldTimeout timespec
	heldArg     getEventsArg
}

// setupFlagSets are tried in order. The first is for Linux 6.1 and later: a single issuer with
// deferred task work means completions are processed only inside our own io_uring_enter call,
// in a batch, instead of interrupting the thread whenever one finishes. SUBMIT_ALL keeps one bad
// SQE from stopping the rest of a batch. The later sets are for older kernels.
var setupFlagSets = []uint32{
	setupSingleIssuer | setupDeferTaskrun | setupSubmitAll,
	setupCoopTaskrun | setupSubmitAll,
	0,
}

// newRing sets up a ring with sqEntries submission slots and cqEntries completion slots. It
// must run on the OS thread that will use the ring.
func newRing(sqEntries, cqEntries uint32) (*ring, error) {
	var p params
	var fd int
	var err error
	for _, flags := range setupFlagSets {
		p = params{flags: flags | setupCQSize, cqEntries: cqEntries}
		fd, err = setup(sqEntries, &p)
		if !errors.Is(err, unix.EINVAL) {
			break // EINVAL means this kernel does not know a flag: try the next set
		}
	}
	var lim unix.Rlimit
	if errors.Is(err, unix.ENOMEM) && unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil && lim.Cur != unix.RLIM_INFINITY {
		// Before Linux 5.12 the kernel charges ring memory to RLIMIT_MEMLOCK, often 64 KiB,
		// and our rings need about 800 KiB each. probe's tiny ring fits under that limit, so
		// Available passes and only this full-size setup fails: say what to change. With no
		// limit the ENOMEM is a real shortage of memory and is reported as it is, below.
		return nil, fmt.Errorf("io_uring_setup(%d SQ, %d CQ entries): %w: kernels before Linux 5.12 "+
			"charge io_uring memory to RLIMIT_MEMLOCK (now %d bytes); raise it (ulimit -l, or "+
			"LimitMEMLOCK= in systemd) or use Linux 5.12 or later", sqEntries, cqEntries, err, lim.Cur)
	}
	if err != nil {
		return nil, fmt.Errorf("io_uring_setup(%d entries): %w", sqEntries, err)
	}
	r := &ring{fd: fd, features: p.features}
	r.heldArg.ts = uint64(uintptr(unsafe.Pointer(&r.heldTimeout)))
	if err := r.mmap(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func setup(entries uint32, p *params) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// mmap maps the rings and points our fields at the kernel's head, tail and entry arrays.
func (r *ring) mmap(p *params) error {
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(cqe{}))
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE
	if r.ringMem, err = unix.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring SQ ring (%d bytes): %w", sqSize, err)
	}
	cqMem := r.ringMem
	if !single {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("mmap io_uring CQ ring (%d bytes): %w", cqSize, err)
		}
		cqMem = r.cqMem
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring SQEs (%d bytes): %w", sqeSize, err)
	}

	r.sqHead = u32At(r.ringMem, p.sqOff.head)
	r.sqTail = u32At(r.ringMem, p.sqOff.tail)
	r.sqMask = *u32At(r.ringMem, p.sqOff.ringMask)
	r.sqEntries = *u32At(r.ringMem, p.sqOff.ringEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.tail = *r.sqTail
	// The SQ array maps ring slots to SQE indices. An identity map set once lets us fill SQEs
	// in ring order and publish them by moving the tail alone, as liburing does.
	array := unsafe.Slice(u32At(r.ringMem, p.sqOff.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}

	r.cqHead = u32At(cqMem, p.cqOff.head)
	r.cqTail = u32At(cqMem, p.cqOff.tail)
	r.cqMask = *u32At(cqMem, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&cqMem[p.cqOff.cqes])), p.cqEntries)
	return nil
}

func u32At(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

// push queues one SQE for the next io_uring_enter. It never fails: when the submission queue is
// full, the entry waits in the backlog.
func (r *ring) push(e sqe) {
	if len(r.backlog) == 0 && r.tail-atomic.LoadUint32(r.sqHead) < r.sqEntries {
		r.sqes[r.tail&r.sqMask] = e
		r.tail++
		return
	}
	r.backlog = append(r.backlog, e)
}

// pushInline is push for an SQE the kernel completes during its submission, whatever happens: a
// send with MSG_DONTWAIT, which never waits for the socket. The next wait waits for one completion
// beyond those, so a batch of echoes costs one io_uring_enter that submits them and sleeps, rather
// than one that returns at once with their completions and a second that sleeps.
func (r *ring) pushInline(e sqe) {
	r.push(e)
	r.inline++
}

// inlineQueued is how many pushInline entries the next publish submits.
func (r *ring) inlineQueued() uint32 { return r.inline }

// dropInline makes the next wait return as soon as anything completes, as if nothing had been
// pushed inline: for when the loop must handle one of those completions before it sleeps.
func (r *ring) dropInline() { r.inline = 0 }

// flushBacklog moves backlogged SQEs into the free slots of the submission queue.
func (r *ring) flushBacklog() {
	n := 0
	for ; n < len(r.backlog) && r.tail-atomic.LoadUint32(r.sqHead) < r.sqEntries; n++ {
		r.sqes[r.tail&r.sqMask] = r.backlog[n]
		r.tail++
	}
	r.backlog = append(r.backlog[:0], r.backlog[n:]...)
}

// submitAndWait publishes every queued SQE and makes one io_uring_enter call that submits them
// all and, when wait is true, sleeps until at least one completion is ready. The call is one the
// runtime knows about: while it sleeps, the runtime may give the thread's P to other goroutines.
func (r *ring) submitAndWait(wait bool) error {
	toSubmit, minComplete := r.publish(wait)
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), minComplete,
		enterGetEvents, 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring_enter(submit %d, wait %d): %w", toSubmit, minComplete, errno)
	}
	return nil
}

// canHold reports whether the kernel takes a timeout for io_uring_enter's wait, which
// submitAndWaitHeld needs.
func (r *ring) canHold() bool { return r.features&featExtArg != 0 }

// submitAndWaitHeld is submitAndWait(true) made as a raw syscall that waits at most timeout: the
// runtime does not know the thread is in the kernel, so it neither takes the thread's P nor wakes
// another thread to run it. It reports timedOut when the time ran out with nothing submitted.
func (r *ring) submitAndWaitHeld(timeout time.Duration) (timedOut bool, err error) {
	toSubmit, minComplete := r.publish(true)
	r.heldTimeout = timespec{sec: int64(timeout / time.Second), nsec: int64(timeout % time.Second)}
	_, _, errno := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), minComplete,
		enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&r.heldArg)), unsafe.Sizeof(r.heldArg))
	switch {
	case errno == unix.ETIME:
		// With something submitted the call returns the count instead, and the loop finds
		// no completion and comes back here; the next call times out with nothing to submit.
		return true, nil
	case errno != 0:
		return false, fmt.Errorf("io_uring_enter(submit %d, wait %d, timeout %v): %w", toSubmit, minComplete, timeout, errno)
	}
	return false, nil
}

// publish moves the backlog into the submission queue and the queue's tail to the kernel, and
// returns how many SQEs to submit and how many completions to wait for: one more than the
// submission itself completes inline, or none while the backlog still holds entries, since the
// loop must come back at once to submit them. The loop reaps every completion before it
// publishes, and with DEFER_TASKRUN none is posted between two io_uring_enter calls, so the
// queue is empty when the count starts. Counting too few costs only a call that returns early;
// hence the count is dropped, not carried over, when some entries stay in the backlog.
func (r *ring) publish(wait bool) (toSubmit uint32, minComplete uintptr) {
	r.flushBacklog()
	// The atomic store orders our writes of the SQEs before the tail the kernel reads.
	atomic.StoreUint32(r.sqTail, r.tail)
	toSubmit = r.tail - atomic.LoadUint32(r.sqHead)
	if wait && len(r.backlog) == 0 {
		minComplete = 1 + uintptr(r.inline)
	}
	r.inline = 0
	return toSubmit, minComplete
}

// reap hands every completion that is ready to handle, then gives their slots back to the kernel.
func (r *ring) reap(handle func(cqe)) int {
	n := 0
	for {
		head := *r.cqHead // only we write the head
		tail := atomic.LoadUint32(r.cqTail)
		if head == tail {
			return n
		}
		for ; head != tail; head++ {
			handle(r.cqes[head&r.cqMask])
			n++
		}
		atomic.StoreUint32(r.cqHead, head)
	}
}

// close unmaps the rings and closes the ring fd; the kernel cancels whatever is still in flight.
func (r *ring) close() {
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.ringMem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqMem, r.ringMem, r.sqes, r.cqes = nil, nil, nil, nil, nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

func (r *ring) register(opcode uintptr, arg unsafe.Pointer, nrArgs uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), opcode, uintptr(arg), nrArgs, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// bufRing is a ring of provided buffers (IORING_REGISTER_PBUF_RING, Linux 5.19): a pool the
// kernel picks a buffer from at the moment data arrives, so an idle connection holds no buffer.
// Both the ring of descriptors and the buffers themselves are anonymous mmaps, outside the Go
// heap: the garbage collector never scans, moves or frees memory the kernel is writing into.
type bufRing struct {
	group uint16
	size  int // bytes per buffer
	count uint16
	mask  uint16
	tail  uint16 // our tail: buffers returned but maybe not yet published
	descs []byte // count struct io_uring_buf entries; the ring's tail overlays entry 0's resv
	pool  []byte // count buffers of size bytes
}

func newBufRing(r *ring, group uint16, count uint16, size int) (*bufRing, error) {
	b := &bufRing{group: group, size: size, count: count, mask: count - 1}
	var err error
	prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS
	if b.descs, err = unix.Mmap(-1, 0, int(count)*16, prot, flags); err != nil {
		return nil, fmt.Errorf("mmap buffer ring (%d entries): %w", count, err)
	}
	if b.pool, err = unix.Mmap(-1, 0, int(count)*size, prot, flags); err != nil {
		unix.Munmap(b.descs)
		return nil, fmt.Errorf("mmap %d provided buffers of %d bytes: %w", count, size, err)
	}
	reg := pbufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&b.descs[0]))), ringEntries: uint32(count), bgid: group}
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		b.unmap()
		return nil, fmt.Errorf("io_uring_register(PBUF_RING, %d buffers): %w", count, err)
	}
	for bid := range count {
		b.put(bid)
	}
	b.publish()
	return b, nil
}

// buf returns provided buffer bid.
func (b *bufRing) buf(bid uint16) []byte {
	off := int(bid) * b.size
	return b.pool[off : off+b.size : off+b.size]
}

// put gives buffer bid back to the kernel; it becomes visible at the next publish.
func (b *bufRing) put(bid uint16) {
	d := b.descs[int(b.tail&b.mask)*16:]
	*(*uint64)(unsafe.Pointer(&d[0])) = uint64(uintptr(unsafe.Pointer(&b.pool[int(bid)*b.size])))
	*(*uint32)(unsafe.Pointer(&d[8])) = uint32(b.size)
	*(*uint16)(unsafe.Pointer(&d[12])) = bid
	b.tail++
}

// publish stores the tail so the kernel sees the buffers put since the last publish. The tail
// is a 16-bit field at offset 14 and Go has no 16-bit atomic store, so we store 32 bits at offset
// 12, rewriting entry 0's bid with the value we last wrote there ourselves (the kernel never
// writes descriptors). The atomic store orders the descriptor writes before the tail.
func (b *bufRing) publish() {
	bid0 := *(*uint16)(unsafe.Pointer(&b.descs[12]))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.descs[12])), uint32(b.tail)<<16|uint32(bid0))
}

// pbufReg is struct io_uring_buf_reg, the argument of IORING_REGISTER_PBUF_RING and of its
// unregister twin.
type pbufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	pad         uint16
	resv        [3]uint64
}

func (b *bufRing) unregister(r *ring) {
	reg := pbufReg{bgid: b.group}
	r.register(unregisterPbufRing, unsafe.Pointer(&reg), 1)
}

func (b *bufRing) unmap() {
	unix.Munmap(b.pool)
	unix.Munmap(b.descs)
}

// SQE constructors. Each fills only what its operation reads; the rest stays zero.

func acceptSQE(fd int, multishot bool, userData uint64) sqe {
	e := sqe{opcode: opAccept, fd: int32(fd), opFlags: unix.SOCK_CLOEXEC, userData: userData}
	if multishot {
		e.ioprio = acceptMultishot
	}
	return e
}

// recvSelectSQE receives at most n bytes into a buffer the kernel takes from group when data
// arrives.
func recvSelectSQE(fd int, n int, group uint16, pollFirst bool, userData uint64) sqe {
	e := sqe{opcode: opRecv, fd: int32(fd), len: uint32(n), flags: sqeBufferSelect, bufGroup: group, userData: userData}
	if pollFirst {
		e.ioprio = recvsendPollFirst
	}
	return e
}

// recvMultishotSQE is a recv that stays armed (IORING_RECV_MULTISHOT, Linux 6.0): each time data
// arrives the kernel takes a buffer from group, fills it and posts a completion with
// IORING_CQE_F_MORE, without a new submission. limit (sqe.optlen, Linux 6.17) ends it once that
// many bytes have been received in all; the completion that crosses the limit may overshoot it by
// up to one buffer, and it comes without F_MORE. Kernels without the limit refuse a nonzero optlen
// with EINVAL, as kernels before 6.0 refuse the multishot flag. Each completion holds at most one
// buffer (len 0: the buffer's size).
func recvMultishotSQE(fd int, group uint16, limit uint32, pollFirst bool, userData uint64) sqe {
	e := sqe{opcode: opRecv, fd: int32(fd), flags: sqeBufferSelect, bufGroup: group, ioprio: recvMultishot,
		spliceFdIn: int32(limit), userData: userData}
	if pollFirst {
		e.ioprio |= recvsendPollFirst
	}
	return e
}

// recvSQE receives into buf, which must stay reachable until the completion.
func recvSQE(fd int, buf []byte, userData uint64) sqe {
	return sqe{opcode: opRecv, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), len: uint32(len(buf)), userData: userData}
}

// sendSQE sends buf, which must stay reachable and unchanged until the completion.
func sendSQE(fd int, buf []byte, msgFlags uint32, userData uint64) sqe {
	return sqe{opcode: opSend, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), len: uint32(len(buf)),
		opFlags: msgFlags | unix.MSG_NOSIGNAL, userData: userData}
}

// pollInSQE completes once fd is readable.
func pollInSQE(fd int, userData uint64) sqe {
	return sqe{opcode: opPollAdd, fd: int32(fd), opFlags: unix.POLLIN, userData: userData}
}

// timeoutSQE completes with -ETIME after ts. The kernel copies *ts when the SQE is submitted, after
// this returns, so ts must not live on a goroutine stack (which can move): a field of a heap
// object or a global.
func timeoutSQE(ts *timespec, userData uint64) sqe {
	return sqe{opcode: opTimeout, fd: -1, addr: uint64(uintptr(unsafe.Pointer(ts))), len: 1, userData: userData}
}

// cancelSQE cancels the operation whose user data is target.
func cancelSQE(target, userData uint64) sqe {
	return sqe{opcode: opAsyncCancel, fd: -1, addr: target, userData: userData}
}

// requiredOps are the operations the model issues, with the Linux version that added each.
var requiredOps = []struct {
	op   uint8
	name string
}{
	{opPollAdd, "POLL_ADD"}, {opTimeout, "TIMEOUT"}, {opAccept, "ACCEPT"},
	{opAsyncCancel, "ASYNC_CANCEL"}, {opSend, "SEND"}, {opRecv, "RECV"},
	{opSendmsg, "SENDMSG"}, {opRecvmsg, "RECVMSG"}, // the UDP variant's; Linux 5.3, before FAST_POLL
}

// probe sets up a tiny ring and checks that it has every feature and operation the model needs.
// The error says why io_uring cannot be used here.
func probe() error {
	p := params{}
	fd, err := setup(4, &p)
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("io_uring_setup: %w: the kernel has no io_uring (Linux 5.7 or later is needed)", err)
	case errors.Is(err, unix.EPERM):
		if b, rerr := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); rerr == nil && strings.TrimSpace(string(b)) != "0" {
			return fmt.Errorf("io_uring_setup: %w: kernel.io_uring_disabled=%s", err, strings.TrimSpace(string(b)))
		}
		return fmt.Errorf("io_uring_setup: %w: blocked by a seccomp filter or container policy", err)
	case err != nil:
		return fmt.Errorf("io_uring_setup: %w", err)
	}
	defer unix.Close(fd)
	// Without FAST_POLL (Linux 5.7) a recv on an empty socket would park a kernel worker thread
	// per connection; without NODROP completions could be lost when the CQ overflows.
	if p.features&featFastPoll == 0 || p.features&featNoDrop == 0 {
		return fmt.Errorf("io_uring lacks FEAT_FAST_POLL or FEAT_NODROP (features %#x): Linux 5.7 or later is needed", p.features)
	}
	var pr struct {
		lastOp, opsLen uint8
		resv           uint16
		resv2          [3]uint32
		ops            [64]struct {
			op, resv uint8
			flags    uint16
			resv2    uint32
		}
	}
	r := &ring{fd: fd}
	if err := r.register(registerProbe, unsafe.Pointer(&pr), uintptr(len(pr.ops))); err != nil {
		return fmt.Errorf("io_uring_register(PROBE): %w", err)
	}
	for _, o := range requiredOps {
		if o.op > pr.lastOp || pr.ops[o.op].flags&opSupported == 0 {
			return fmt.Errorf("io_uring lacks IORING_OP_%s", o.name)
		}
	}
	return nil
}
