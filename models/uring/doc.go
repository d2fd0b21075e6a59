// Package uring is the completion model: an echo server on io_uring (Linux 5.7 and later, best on
// 6.1 and later). Where epoll tells a thread that a socket is ready and leaves the read to it, here
// the thread asks the kernel to do the whole read and is told when it is done: this is the
// "asynchronous IO" of the classic taxonomy, the one model in echobench where neither phase of a
// read happens on the server's thread.
//
// Who waits and who copies. Each loop keeps a recv armed on every connection it is willing to
// read from and goes to sleep in io_uring_enter. The kernel waits for data on each socket itself (it
// arms its own internal poll), and when data arrives it takes a buffer from the loop's ring of
// provided buffers and copies the data into it, then posts a completion saying which buffer holds
// how many bytes. The loop's thread only ever wakes up to completed reads. The echo is the same
// in reverse: a send is posted and the kernel copies the bytes from our buffer into the socket.
// User code never calls read(2) or write(2) and never moves a byte on the fast path.
//
// Cost of one echoed message: no syscall of its own. It costs one submission entry (the send) and
// two completions (the recv's and the send's), written to and read from memory shared with the
// kernel: the recv is multishot and stays armed, so it is not submitted again per message, and
// the kernel does not poll the socket again either. The loop makes one io_uring_enter per batch:
// it submits everything the last batch prepared and waits for the next completions in the same
// call. The echoes' sends complete during that submission (MSG_DONTWAIT, below), so the call
// waits for one completion beyond theirs and sleeps at once, rather than returning with them and
// sleeping in a second call. A single ping-pong connection thus costs one io_uring_enter per
// message; many connections share each call, so the count per message falls below one as the
// batch grows. (Where the recv is not multishot, the send's completion is what re-arms it, and
// the loop takes it before it sleeps: two calls per wake.) The epoll model pays a share of an
// epoll_wait per batch too, but then two syscalls per message, read(2) and sendto(2).
// results/syscalls.md has the counts; results/2026-12-01-uring-30k compares this loop with the
// one before it (a recv submitted per message, two calls per wake) at a fixed rate.
//
// The loop, in data-flow order (loop_linux.go, with the accept step in accept_linux.go):
//   - listen: one SO_REUSEPORT listener per loop (sockutil.ListenGroup), so the kernel spreads
//     connections over the loops by a hash of their addresses and no loop ever touches another's
//     connections. (This model always does so; -reuseport is implied. The first listener binds the
//     configured address, the others join its port.) With more than one loop and a fixed port,
//     SO_REUSEPORT also lets any other process of the same user that sets it bind that port and
//     silently take a share of the connections; the kernel does not refuse it as it would a second
//     plain bind. Port 0 is safe: the kernel picks a port nobody else holds.
//   - accept: one multishot accept per listener (Linux 5.19) completes once per new connection
//     and stays armed; on older kernels an accept is posted again after each. On EMFILE, ENFILE
//     or ENOBUFS the accept ends; it is re-armed after 50 ms by an IORING_OP_TIMEOUT, so running
//     out of fds costs 20 tries a second, not a spinning core, and the clients wait in the listen
//     backlog. (io_uring reads RLIMIT_NOFILE when the accept is armed, not when it completes.)
//   - wait and read: a multishot recv (IORING_RECV_MULTISHOT) with IOSQE_BUFFER_SELECT. A
//     connection holds no buffer while idle: the kernel picks one from a pool of 256 buffers of
//     sockutil.ReadBufferSize per loop when data arrives, fills it, posts a completion and stays
//     armed for the next arrival. A recv that finds the pool empty ends with ENOBUFS and is
//     posted again, poll-first, once the batch has returned its buffers. Kernels before 6.17,
//     which have no byte limit for a multishot recv (below), get one recv per arrival into a
//     provided buffer; kernels before 5.19 have no buffer rings, and each connection then
//     receives into a buffer of its own.
//   - write: the echo is sent straight from the buffer the kernel filled, with MSG_DONTWAIT, so
//     the kernel either takes it all or says how far it got, and the buffer goes back to the pool
//     within the batch. A short send (the client is not keeping up) copies the rest into the
//     connection's outbound and sends from there without MSG_DONTWAIT: the kernel then waits for
//     the socket to drain, and whatever a completion reports as not yet sent is resubmitted.
//   - backpressure: no recv takes more than the room the outbound bound leaves (the rule of
//     sockutil.Pool, the same in every model). A multishot recv is armed only with room for at
//     least a buffer, and with a byte limit (sqe.optlen, Linux 6.17) that ends it before it can
//     have delivered more than that room; with less room a single recv asks for the room alone.
//     No recv is posted while the room is 0 or while the kernel is sending from the buffer a recv
//     would fill. Unread bytes stay in the client's
//     socket and TCP flow control stops the client; its stall costs the loop nothing but a parked
//     send.
//   - close: recv returning 0 is the client's half-close: the outbound is drained, then the
//     socket closed. An error (ECONNRESET, EPIPE) cancels the connection's operations that are
//     still in flight (IORING_OP_ASYNC_CANCEL, one for the recv and one for the send, so a
//     connection has at most four operations in flight) and the socket is closed only once
//     their completions have arrived, so no operation can act on an fd number after it is
//     reused.
//
// Loops and threads. Config.Loops rings (default GOMAXPROCS), each created on and used by its own
// locked OS thread. That is a requirement, not a tuning: the ring is set up with
// IORING_SETUP_SINGLE_ISSUER and DEFER_TASKRUN (Linux 6.1), which tie it to the creating thread
// and let the kernel finish completions in a batch inside our io_uring_enter instead of
// interrupting the thread for each. -lockthread is therefore implied as well.
//
// Close wakes a sockutil.Waker, an eventfd on which every loop keeps a POLL_ADD; the loop cancels
// its accept and every in-flight operation, reaps all their completions, and only then closes the
// sockets and the listener, unregisters and unmaps the buffers and closes the ring. Close returns
// when every loop's thread has done so.
//
// Memory the kernel uses outlives any one Go statement, so: the provided buffers and their ring are
// anonymous mmaps, outside the Go heap, never scanned, moved or freed by the collector; an outbound
// send reads a chunk of the connection's sockutil.Outbound, whose queued bytes never move and which
// the conn keeps reachable until the completion (Go's heap does not move); and the user data of
// each operation is an index (kind, connection slot, generation), never a pointer.
//
// The io_uring interface is written here against golang.org/x/sys/unix (ring_linux.go) rather
// than a library. The Go libraries we looked at, such as giouring (pinned candidate
// v0.0.0-20230826085535-69588b89acb9, unchanged since 2023), are line-by-line liburing ports
// whose buffer-ring helper computes offsets in 16 bits (wrong past 4096 entries); this model needs
// six opcodes, and with the ABI in front of the reader the shared rings, the memory barriers and
// the buffer ring are part of what the model teaches. It also adds no dependency.
//
// Where it breaks. io_uring is often unavailable: disabled by kernel.io_uring_disabled, refused by
// container seccomp profiles, absent before 5.7; Available says which, and the model does not
// start. Before Linux 5.12 the rings' memory (about 800 KiB per loop) is charged to RLIMIT_MEMLOCK,
// often 64 KiB: Available, which sets up a tiny ring, passes, and Start fails with ENOMEM and says
// to raise ulimit -l. Each loop is one thread, so one hot loop is one saturated core, and
// SO_REUSEPORT hashing can leave loops unevenly loaded. Each loop maps 16 MiB of provided buffers
// and touches all of them over time. The loop waits in io_uring_enter as a raw syscall with a
// timeout (IORING_ENTER_EXT_ARG, Linux 5.11) of 10 ms, keeping its P, and only then in one the
// runtime knows about, as the epoll model does and for the same reason: its doc.go describes the
// runtime's P hand-off this avoids and what keeping the P costs the process's other goroutines.
// Before 5.11 every wait that sleeps pays that hand-off. A client that does not read makes the
// server copy its echo once into the outbound, up to the outbound limit. The per-message handler
// (-work, -block; server.Handler) runs on the loop's thread as it reaps a recv's completion, before
// the echo's send is prepared: for a handler's time D the loop reaps and submits nothing, so every
// connection of that loop waits D, the echoes prepared earlier in the same batch too, which go to
// the kernel only with the batch's next io_uring_enter. Armed recvs still complete meanwhile.
//
// UDP (-udp, udp_linux.go). One UDP socket, bound by sockutil.ListenUDP and shared by every loop:
// each loop keeps its own ring and its own datagram buffers, and the kernel hands each datagram
// to one of the loops waiting on the socket. A loop keeps one multishot IORING_OP_RECVMSG armed
// (Linux 6.0) over a ring of provided buffers, each large enough for the largest datagram: when a
// datagram arrives the kernel takes a buffer, writes a header, the sender's address and the
// payload into it, and posts a completion, staying armed. The loop runs the handler inline, then
// posts an IORING_OP_SENDMSG of the payload to that address straight from the same buffer, with
// MSG_DONTWAIT (on EAGAIN it is posted again without, and the kernel waits for room), and the
// buffer goes back to the ring when the send completes. So an echoed datagram costs, as a TCP
// message does, no syscall of its own: one submission (the send) and two completions, and the
// kernel does the waiting and both copies. Kernels without multishot recvmsg (or before 5.19,
// without buffer rings) get up to four single recvmsgs armed per loop, into buffers the loop
// picks, with the same buffer layout; the loop falls back by itself when the kernel refuses the
// multishot one.
//
// Bounds: a buffer is held from its datagram's arrival until its echo's send completes, so a
// loop holds at most as many replies as it has buffers (256, fewer when there are many loops, so
// that all of them together hold no more than sockutil.ReplyQueueLimit). With every buffer held
// the multishot recvmsg ends (ENOBUFS) and is armed again when one comes back: datagrams wait in
// the socket meanwhile, and the kernel drops what its receive buffer cannot hold, uncounted by the
// server. A reply the kernel refuses, or one cancelled by Close, is counted as dropped. Close
// cancels every recvmsg and sendmsg in flight, reaps their completions, frees the buffers and the
// ring, and closes the socket once every loop is done. Sharing one socket means an arrival wakes
// every loop's armed recvmsg while only one finds the datagram; one SO_REUSEPORT socket per loop,
// as the TCP server has, would avoid that.
package uring
