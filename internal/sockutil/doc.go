// Package sockutil is the socket layer every raw-fd model shares, so that the models differ only
// in their IO model and each model's package shows only its own idea. It holds:
//
//   - Listen and ListenGroup: the one way a model opens its listening sockets (options:
//     non-blocking, SO_REUSEPORT, backlog), with one dual-stack rule;
//   - AcceptPending and AcceptBatch: how an event loop takes connections from its listener, and
//     the error classes (IsAcceptRetryable, IsResourceShortage, IsPeerGone) every accept and
//     every connection error is sorted by;
//   - SetNoDelay: the socket option every accepted connection gets;
//   - ReadNonblock and SendNonblock for event loops, Read and Send for threads that block: the
//     per-message syscall path;
//   - ReadBufferSize and ReadBuffer: the size of one read, the same for every model;
//   - Outbound and Pool: the bounded outbound queue of one connection, and the rule that stops
//     reading a client that does not read its echoes;
//   - Waker: the eventfd a loop sleeps on beside its sockets, written to stop it;
//   - LogBurst: the rate limit for a condition that repeats in bursts, such as EMFILE;
//   - for UDP variants: ListenUDP and ListenUDPGroup, the bounds MaxDatagram and
//     ReplyQueueLimit, Datagrams and ReplyQueue (recvmmsg and sendmmsg batches, raw) for event
//     loops, Recvfrom and Sendto for threads that block.
//
// models/FAIRNESS.md lists what each model takes from here and where a model differs, and why.
//
// # Two syscall paths, one per kind of caller
//
// The runtime wraps every syscall made through unix.Read, unix.Write and the like in
// entersyscall/exitsyscall: bookkeeping that lets it hand the thread's P to other goroutines
// while the call blocks, and take one back when it returns. A call on a non-blocking socket never
// blocks, so for it that bookkeeping is pure cost, paid twice per echoed message on an event loop.
// ReadNonblock and SendNonblock are therefore made with RawSyscall, which skips it: the syscall
// package's, called directly. x/sys/unix's RawSyscall is an assembly jump to it, which the caller
// reaches with its arguments on the stack and an ABI wrapper loads into registers: a frame and a
// return more per call (results/2026-12-02-meter-cache/ has the measurement). The other raw calls
// on the engines' per-wake paths are made the same way. A thread that sleeps in the call (the
// blocking and process models, the workers of a prefork pool) must keep the bookkeeping, or it
// would hold its P for as long as it sleeps and starve every goroutine queued behind it: those use
// Read and Send. Both pairs make the same system calls, read(2) and sendto(2) with MSG_NOSIGNAL,
// so a syscall count of any model (results/syscalls.md, by `make syscalls`) shows the same calls
// per message.
//
// # Signals and EINTR
//
// The Go runtime installs its signal handlers with SA_RESTART and signals its own threads
// (preemption, profiling), so a socket read or send that a signal interrupts is usually restarted
// by the kernel; the waits (select, epoll_wait and the like) are never restarted and fail with
// EINTR whatever the flag says. Every call that can fail with EINTR is retried where it is made:
// nothing was copied, nothing is lost. close(2) is the exception: on Linux it releases the fd even
// when it reports an error (EINTR included), so no model retries a close.
//
// It is not a model and serves no connection; no model imports another, they all import this.
package sockutil
