// Package epoll is the reactor written by hand: N event loops, each an epoll(7) instance waited
// on by one locked OS thread that accepts, reads and writes non-blocking sockets itself. No
// goroutine per connection, no Go netpoller, no scheduler between an event and its handling. It
// is what nginx, redis and gnet do, and it is echobench's performance reference.
//
// # One echoed message
//
// In the common case a message costs two syscalls, read(2) and sendto(2) (sockutil's raw
// non-blocking pair), plus a share of an epoll_wait (made as epoll_pwait(2)): a wait returns up to
// 256 ready connections, so under load one wait serves many messages, and when idle it costs one
// per message. results/syscalls.md has the counts. No epoll_ctl is made while a connection's echoes
// go out whole. When the kernel takes only part of an echo, the rest is queued and the connection
// pays one epoll_ctl to arm EPOLLOUT, one send per 16 KiB queued once the socket drains, and one
// epoll_ctl to disarm it.
//
// Waiting happens in epoll_wait, in the kernel, one thread per loop. Copying happens in
// read(2), which moves the bytes from the socket's receive queue into the loop's one read buffer
// (sockutil.ReadBufferSize), and in sendto(2), which moves them from that same buffer to the
// send queue. Only a partial write copies in user space, into the connection's outbound chunks.
//
// A loop waits in a raw epoll_wait, one the runtime does not know about, for up to 10 ms
// (heldWait), and only if nothing arrived in that time in the runtime's own epoll_wait. A Go thread
// that blocks in a syscall the runtime knows about has its P taken by sysmon, which wakes another
// thread to look for work, and must win a P back when it wakes: below saturation, where most waits
// block, every wait would cost futex calls, sysmon's nanosleeps and context switches that a C
// server never pays. The raw wait costs none of them and makes one epoll_wait per wake, as a C loop
// does; read and send are raw for the same reason (sockutil's package documentation says why). Its
// price is that the loop keeps its P while it sleeps. The process's other goroutines (Close, Stats,
// cmd/echoserver's signal handling, the collector's workers) then run when sysmon preempts the
// loop, which it does once the loop has run for 10 ms (the runtime's forcePreemptNS), or when the
// loop has been idle for heldWait and waits through the runtime. With GOMAXPROCS 1, a server pinned
// to one CPU, a busy server therefore answers a signal within a few of those 10 ms periods rather
// than at once. A stop-the-world does not wait for that: its preemption signal cuts the wait short
// with EINTR and the loop yields at its next call.
//
// The event loop (loop_linux.go) reads top-down in data-flow order: listen → accept → wait
// (run) → read → write (echo, flush, rearm) → close.
//
// # Level-triggered, one read per report
//
// Every fd is registered level-triggered. A ready connection gets one read of up to 64 KiB per
// epoll_wait; if more is waiting, the next wait reports it again, after the loop has served the
// other ready connections. Edge-triggered epoll would tell us only once, so every report would
// need reads until EAGAIN: a third syscall for a small message, the one that returns EAGAIN,
// and a connection that streams could hold the loop for as long as it keeps sending.
// Level-triggering also makes backpressure a plain change of interest: drop EPOLLIN and the
// connection is not reported until we ask again. What it costs: the kernel checks each reported
// fd again on the next wait, and EPOLLOUT must be armed only while there is something to write,
// or a writable socket would be reported on every wait. So it is: rearm keeps the registered
// interest in line with each connection's state, with an epoll_ctl only when that changes.
//
// # Backpressure
//
// Each connection's outbound (the echo the client has not read yet) is a sockutil.Outbound,
// bounded by Config.Outbound with the rule every model shares (sockutil.Pool): a read takes no
// more than the room left under the bound; when the bound is reached, EPOLLIN is dropped until
// half of it has drained. The client's further bytes stay in the kernel, TCP flow control stops
// the client, and the server holds at most the bound for it, in chunks that go back to a
// per-loop pool once sent. Other connections on the loop are not held up.
//
// # Spreading connections over the loops
//
// By default one listening socket is shared: every loop registers it with EPOLLEXCLUSIVE, so a
// new connection wakes one loop that is waiting in epoll_wait, which is to say an idle one,
// rather than all of them. One accept queue means a connection waits for whichever loop is free
// first, not for the one a hash picked; and there is one socket to close. Its price is that
// loops share the listener's accept lock, which matters only when connections arrive faster
// than tens of thousands a second, and that a woken loop may find the connection already taken
// (EAGAIN, harmless). With Config.ReusePort each loop gets its own SO_REUSEPORT listener on the
// same port: the kernel hashes each new connection to one of them, accepts scale without a
// shared lock, but a busy loop's queue waits for that loop however idle the others are. We did
// not pick a single acceptor handing fds to the loops: it adds a thread hop, a queue and an
// eventfd write to every connection, for balance that EPOLLEXCLUSIVE gives for free.
//
// # Errors
//
// EINTR is retried where it occurs. ECONNRESET and EPIPE close the connection quietly (send uses
// MSG_NOSIGNAL, as every sockutil send does, so a vanished client raises no SIGPIPE). A read of 0
// (the client's half-close) stops reading; what is queued is sent, then the connection is closed.
// EMFILE, ENFILE and ENOBUFS at accept take the listener out of the loop's epoll set for 50 ms, or
// until the loop closes a connection, since the listener stays readable and an immediate retry
// would spin; clients wait in the listen backlog meanwhile. A connection is taken out of the epoll
// set (EPOLL_CTL_DEL) before its close(2): close alone would leave it registered while a child
// forked by another goroutine still holds a copy of the fd. Close writes every loop's eventfd; each
// loop closes its connections and returns, and Close returns once all have and every fd is closed.
//
// # Where it breaks
//
// Whatever a loop is doing, its other connections wait: one loop flushing a large backlog
// delays all of its connections. The per-message handler (-work, -block; server.Handler) runs
// inline on the loop too, between a connection's read and its send, so a handler that takes D
// holds every other connection of that loop for D, where a thread per connection would hold back
// only its own client. A connection never moves to another loop, so a few busy
// connections that share a loop leave other cores idle while theirs is saturated. Two syscalls
// per message is the floor of this design; with small messages the loops are syscall-bound,
// which is what io_uring's batched submissions remove. The loops always lock their OS threads
// (Config.LockOSThread is implied); more loops than GOMAXPROCS makes them compete for the
// runtime's Ps.
package epoll
