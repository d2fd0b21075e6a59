// Package blocking is the oldest server there is: one OS thread per connection, each blocked in
// read(2) on a blocking socket until its client sends something, the way Apache's prefork and
// worker MPMs and a first C server do it.
//
// Each connection's goroutine locks itself to its OS thread with runtime.LockOSThread and never
// unlocks, and the sockets are raw blocking fds from golang.org/x/sys/unix that Go's netpoller
// never sees. So a blocked read really blocks a thread, and when the connection ends the runtime
// destroys that thread: the model pays the cost it is famous for, which stdnet only appears to.
//
// With Config.Pool = N, N threads each block in accept(2) on the shared listening socket and
// serve one client at a time; the N+1st client completes its handshake in the kernel and waits in
// the listen backlog until a thread is free. With Pool = 0 one acceptor thread starts a thread per
// accepted connection.
//
// Cost of one echoed message: read(2), then sendto(2) with MSG_NOSIGNAL (more than one only when
// a signal interrupts it), through sockutil's runtime-aware pair, since the thread sleeps in them.
// A connection costs a thread: its creation and teardown (clone(2), exit(2)), a kernel stack and
// task, a thread stack, a goroutine and one read buffer of up to 64 KiB; and every message costs
// a voluntary context switch, since the thread sleeps in read(2), and a wakeup by the scheduler to
// run it again. results/syscalls.md has the counts.
//
// In Go a thread that wakes from a blocking syscall also needs one of the runtime's Ps to run Go
// code again (the hand-off the epoll model's doc.go describes). With Go's default of one P per
// CPU, a server pinned to one CPU would have its thousand threads queue for a single P, a cost of
// the runtime and not of the model; so in a process of its own (cmd/echoserver) the model asks for
// GOMAXPROCS 128, or the pool size if smaller (procs says why 128).
//
// Waiting and copying both happen in read(2), on the connection's own thread: the kernel puts the
// thread to sleep until data arrives, then copies it into the thread's buffer. Writing can block
// too, which is the model's backpressure: a thread waiting for its client to take an echo does not
// read, so it never holds more than one buffer, and TCP flow control stalls the client.
//
// The per-message handler (-work, -block; server.Handler) runs on the connection's own thread,
// between the read and the send, so a slow handler holds back only its own client, while the other
// threads go on serving theirs; with a pool, a thread busy in handlers serves nobody else, so slow
// handlers make clients past the pool wait longer in the backlog.
//
// Where it breaks: memory and scheduling at thousands of connections, a thread each, most of them
// asleep. Past threadCeiling (9,000, below Go's limit of 10,000 threads, which aborts the process)
// new connections are refused; the kernel's thread limits (ulimit -u, kernel.threads-max) and
// memory can end it sooner, and a thread the runtime cannot create aborts the process. A pool
// bounds that cost but caps concurrency: client N+1 waits, however idle the first N are.
//
// # UDP (-udp)
//
// The same threads on one blocking UDP socket (udp_linux.go). With Config.Pool = N, N threads each
// sleep in recvfrom(2) on the shared socket, the kernel wakes one per datagram, and it handles and
// echoes that datagram with sendto(2) before it reads again: Pool = 1 is the single-threaded
// recvfrom/sendto loop of the notes' udp-server.py. With Pool = 0, the shape of Python's
// ThreadingUDPServer: one thread sleeps in recvfrom(2), copies each datagram out of its buffer and
// starts a thread for it, which runs the handler, sends the echo and exits. Either way the reply
// goes to the sender recvfrom reported, byte for byte, an empty datagram too, and the handler runs
// on the thread that answers.
//
// Cost of one echoed datagram: recvfrom(2) and sendto(2), and a voluntary context switch for the
// sleep in recvfrom. Pool = 0 adds a thread's creation and exit (clone(2), exit(2)), a copy of the
// datagram and its allocation, and a hand-off from the reading thread to the new one. Waiting and
// copying both happen in recvfrom(2), on the reading thread.
//
// Bounds. A pool never holds more than N datagrams; the rest wait in the socket's receive buffer
// and the kernel drops what does not fit there, as it does for every UDP socket. The
// thread-per-datagram server has at most datagramThreadCeiling (sockutil.ReplyQueueLimit, 1,024)
// datagram threads alive; a datagram read while that many are busy is dropped and counted
// (server.Stats.Dropped), not queued, and the reader never waits for a thread: with -block D it
// answers at most 1,024/D datagrams a second, where Python's server would start threads until the
// process died. A reply sendto(2) refuses (ENOBUFS, a firewall's EPERM) is dropped and counted
// too. Close shuts the socket's reading side down (shutdown(2) with SHUT_RD), which wakes every
// thread asleep in recvfrom(2), waits for datagram threads to send their replies, and closes
// the socket once every thread has exited.
package blocking
