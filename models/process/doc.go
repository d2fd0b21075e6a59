// Package process is the oldest way to serve many clients: one operating-system process per
// connection, the shape of inetd, Apache's prefork MPM and Python's ForkingTCPServer. A process
// is the unit the kernel isolates, schedules and cleans up after, so a crash, a leak or a stuck
// client takes down one connection and nothing else.
//
// With Config.Pool 0 the parent accepts each connection (accept4, parked in Go's netpoller) and
// starts a child for it: this same binary re-executed in its reexec role (package internal/reexec),
// the connection at fd 3 (exec.Cmd.ExtraFiles) and a report pipe at fd 4. The child echoes with
// blocking read(2) and sendto(2) until the client half-closes or goes away, writes its byte counts
// to the pipe, and exits; the parent reads the pipe to EOF, reaps the child with wait4, and frees
// its slot. At most DefaultMaxChildren children run at once; past that the parent stops accepting
// and clients wait in the kernel's listen backlog. Accept retries at once after an error that
// concerns one queued connection (ECONNABORTED, EPROTO and kin), every acceptBackoff after a
// shortage of fds or memory (logged once per burst), and fails the server on anything else (EINVAL,
// EBADF: the listener itself is broken).
//
// With Config.Pool N > 0 (prefork) N workers are started up front, each inheriting the listening
// socket and blocking in accept(2) on it; the kernel hands each new connection to exactly one
// sleeping worker. A worker serves one connection at a time, so N connections are served at once
// and the rest wait in the backlog. Workers report each accept and each close over their pipe,
// which is how the parent counts Accepted, Active and bytes; the parent replaces a worker that
// dies, and fails the server (Wait returns why) once maxQuickDeaths workers in a row die within
// minWorkerLife of starting, since then no replacement can live.
//
// Byte counts live in the children, so Stats sees them only as children report them: a child
// sends a progress record once progressBytes (64 MiB) have moved or progressEvery (1 s) has
// passed since its last report, checked after each echo, and the rest when the connection ends.
// A stats line taken mid-run therefore lags each busy connection by up to a second or 64 MiB, and
// an idle connection by the bytes of its last second of activity, until it moves data again or
// ends. After Close, every child has reported and the counts are exact.
//
// What one connection costs with Pool 0: in the parent, accept4, a pipe, clone(CLONE_VM|
// CLONE_VFORK) and execve (os/exec's fork path, which copies no page tables), a pidfd, and later a
// read of the report and wait4. In the child, a whole Go runtime start (mapping the binary, the
// heap arenas and six threads at GOMAXPROCS=1, milliseconds of CPU) before the first byte is
// echoed, then a setsockopt(TCP_NODELAY). Most of an idle child's resident memory is the binary's
// pages, shared by every sibling; what is its own is its heap and thread stacks. Prefork pays the
// process once per worker instead of once per connection: its per-connection cost is one accept(2),
// one setsockopt and two 17-byte pipe writes (plus one progress record per second or 64 MiB of a
// long connection).
//
// What one echoed message costs: one read(2) and one sendto(2) (more sends only if a signal
// interrupts a large one part-way), through sockutil's runtime-aware pair, since the child's
// thread sleeps in them. The child calls them on the raw fd, not through os.File or net.Conn, so
// the Go netpoller never sees the socket: the child makes no epoll call and no EAGAIN read for
// it, exactly as in a C forking server. What a C server does not pay is the Go runtime in every
// child: its sysmon thread sleeps and wakes in nanosleep, and each time the child's thread sleeps
// in read(2) the runtime hands its P on (the hand-off the epoll model's doc.go describes), waking
// and parking threads with futex. With a hundred children sharing one CPU that shows as several
// futex and nanosleep calls and a few voluntary context switches per message, more calls than
// the echo itself makes; prefork workers pay the same. results/syscalls.md has the counts.
//
// Waiting for data happens in the kernel, inside read(2), with the child's one thread asleep; the
// copy from the socket buffer into the child's buffer (sockutil.ReadBufferSize, or the outbound
// limit if smaller) happens in the same read(2). Writing back blocks while the client's window is
// full, and until it completes the child does not read again, so a client that never reads costs
// one buffer and pushes back on its own sender (backpressure by blocking), without affecting any
// other client, which has its own process.
//
// The per-message handler (-work, -block; server.Handler) runs in the child, on its one thread,
// between the read and the send; it reaches the child with the rest of the configuration, as the
// server's own flags in the child's arguments (Config.Args, parsed back by the child). A slow
// handler holds back only its own connection, which has a process to itself; in prefork, a worker
// busy in handlers serves nobody else, so clients past the pool wait longer in the backlog.
//
// Stopping: Close closes the listener, sends every child SIGTERM, and SIGKILLs any still alive
// after terminateGrace. A child catches SIGTERM, shuts its connection down (which ends its blocked
// read or write), reports, and exits. Close is the only way a child is stopped: children run in a
// process group of their own and ignore SIGINT, so a terminal's Ctrl-C, which signals the whole
// foreground group, reaches the parent alone, and the parent's Close still collects every child's
// counts. Children are started with Pdeathsig SIGKILL, so they die if the parent dies. Pdeathsig
// follows the parent thread that forked, not the process: it would fire if that Go thread exited,
// which the runtime does only for a goroutine that exits while locked to its thread; nothing in
// echobench does that while a server runs.
//
// Where it breaks: process creation rate and memory. Every connection is a fork, an exec and a
// runtime start, so a workload of short connections is bounded by how fast the kernel and the
// runtime start processes, long before the network matters; a prefork pool reusing its workers
// is not. Every open connection is a process, so ten thousand idle clients are ten thousand
// runtimes, six threads each, and as many entries in the kernel's process table. Prefork trades
// that for a fixed pool: memory and startup are paid N times, up front, and the price is that the
// N+1st client waits in the backlog, unserved, however idle the N clients being served are; that
// is the knob the blocking thread pool has too.
package process
