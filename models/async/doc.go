// Package async is the reactor model, on gnet v2 (github.com/panjf2000/gnet/v2, pinned at v2.10.0).
//
// A reactor is a few threads that each wait on one readiness multiplexer (epoll) for many
// non-blocking sockets and, when the kernel says a socket is ready, call a handler that does its
// work at once and returns: no handler may block, because while it runs nothing else on that loop
// does. gnet is a Go library for exactly that, and this model is what a Go programmer gets who
// reaches for it instead of package net.
//
// # What gnet adds over raw epoll
//
// Loops: Config.Loops event loops (default GOMAXPROCS), each a goroutine with its own epoll
// instance and an eventfd through which other goroutines queue tasks to it. Each loop has its own
// SO_REUSEPORT listener and the kernel spreads connections by a hash of their addresses:
// -reuseport is implied, whatever Config.ReusePort says (see "Where it breaks" for why; gnet's
// other mode, one main reactor goroutine that accepts for every loop, is not used). With port 0 the
// model reserves one port before gnet binds, so that every loop listens on it. Config.LockOSThread
// pins every loop goroutine to an OS thread. A connection stays on its loop for life.
//
// Buffers: each loop has one read buffer (sockutil.ReadBufferSize, or less with a small outbound
// limit, the rule every model follows) shared by all its connections, so an idle connection owns no
// buffer at all. Each connection has an inbound ring for bytes a handler leaves unconsumed and an
// outbound buffer (a pooled ring up to 64 KiB, then a linked list of pooled slices) for bytes the
// kernel would not take. Registration is level-triggered; EPOLLOUT is armed only while the outbound
// buffer is not empty.
//
// # One echoed message
//
// Waiting happens in epoll_wait, called by each loop directly through x/sys/unix (which makes it as
// epoll_pwait(2)): a blocking system call that holds an OS thread per loop while it waits, outside
// Go's own netpoller. After a batch of events gnet polls once more with a zero timeout before it
// blocks again.
//
// Copying happens in read(2), into the loop's shared buffer: gnet makes exactly one read per
// readiness event. OnTraffic takes the bytes as a view of that buffer (no copy) and hands them to
// gnet's Write, which calls write(2) at once from the same buffer. So a message that fits costs
// two system calls, read(2) and write(2) (not sendto(2): gnet writes with write), plus a share of
// an epoll_wait, which serves every connection ready in the same batch; and no EAGAIN read, where
// stdnet pays an extra failing read plus a park and a wakeup. results/syscalls.md has the counts.
// Only bytes the kernel does not take are copied, into the connection's outbound buffer; that
// costs an epoll_ctl to arm EPOLLOUT, one from us to pause reading (below), later a write or
// writev per EPOLLOUT, and an epoll_ctl to disarm when the buffer is empty.
//
// # A client that never reads
//
// gnet v2.10.0 never stops reading a connection: every EPOLLIN makes its loop read, whatever the
// handler does not consume is appended to the inbound ring, and whatever the kernel does not take
// is appended to the outbound buffer; neither has a bound, and gnet has no call to pause reading
// (gnet issues #712 and #722; pull request #713 was not merged). Leaving input unconsumed therefore
// only moves the growth from the outbound buffer to the inbound one: with reads never paused, a
// client that writes without reading grows the server's memory by about what it writes.
//
// So the model pauses reading itself. When an echo leaves anything in gnet's outbound buffer,
// OnTraffic sets the connection's epoll interest to EPOLLOUT alone (pause_linux.go); gnet's own
// write handler sets it back to EPOLLIN when the buffer empties, which resumes reading. TCP flow
// control then stops the client. The bound that results is one read's worth per connection, at most
// sockutil.ReadBuffer(Config.Outbound()); the read size is set from the outbound limit so that
// holds.
//
// Two limits of this. First, gnet exposes no epoll fd: the model reads it from gnet's unexported
// eventloop.poller.fd by reflection, and refuses to start unless the binary's build info shows gnet
// at exactly v2.10.0 with no replace directive and the field is where that version has it. (go test
// records no dependencies in a test binary's build info, so there only the field check runs.) With
// the poll_opt build tag gnet keeps a pointer, not the fd, in each epoll registration, which the
// model's own registration would overwrite: built with that tag, the model reports itself
// unavailable. Second, it pauses as soon as anything is queued instead of letting the queue grow to
// the outbound limit, because gnet closes a connection the moment read returns EOF, after one
// non-blocking flush that drops whatever does not fit in the socket buffer (eventloop.close). A
// half-closing client's last echoes would be lost if its FIN could be read while bytes were queued;
// with reads paused, the FIN is read only once the queue is empty, and close(2) then sends
// everything before the FIN. The kernel's own socket buffers (several MiB each way on loopback) are
// not bounded by this.
//
// # Where it breaks
//
// accept(2) failing with EMFILE, ENFILE or ENOMEM makes gnet stop the whole engine, closing every
// client. OnOpen therefore closes any connection whose fd comes within 64 plus one per loop of
// RLIMIT_NOFILE, so that accept never gets there. That holds only because each loop has its own
// listener and accepts one connection, then runs OnOpen, before it accepts the next. gnet's
// default, one main reactor accepting for all loops, drains the whole backlog into the loops'
// queues before any OnOpen runs, so a flood of connections at a low RLIMIT_NOFILE stops that server
// with "Accept() failed due to error: too many open files", which is why SO_REUSEPORT is always on.
// The test suite floods 2,000 connections at RLIMIT_NOFILE 256, with and without Config.ReusePort,
// and the server keeps serving. The price is the accept rate under load: a loop takes one
// connection per wake of its epoll (gnet's eventloop.accept), and a wake that serves thousands of
// busy connections comes only a few times a second, so a backlog of thousands of new connections
// arriving while the loops echo drains at a few a second, and those clients wait connected but
// unserved, for minutes at 10,000 (`make soak`, results/soak.md). gnet v2.10 offers no middle way:
// its main acceptor drains the backlog at once but stops the engine at EMFILE, as above. ENFILE (the system-wide table) is not covered by this. When gnet
// does stop itself, Wait returns gnet's first error. SO_REUSEPORT would also let this server join a
// fixed port that another process of the same user holds with SO_REUSEPORT, splitting the clients
// between them; so unless Config.ReusePort asks for sharing, Start first checks with a plain bind
// that the port is free.
//
// A handler that blocks or runs long stalls every connection on its loop: the per-message handler
// (-work, -block; server.Handler) runs inline in OnTraffic, between gnet's read and the echo's
// Write, so one that takes D holds every other connection of that loop for D. Connections never
// move between loops, so an unlucky loop stays hot. gnet's logger and its table of engines by
// address are process-wide: the last server started receives gnet's package-level log lines (each
// server drops them once its engine has returned, so they never reach a closed server's Logf),
// and a stopped engine stays referenced until another is started on the same address string.
// gnet's goroutine pool (ants) starts two goroutines when the program starts, whether or not a
// server ever runs; they belong to the process, not to any server, and Close does not count them.
//
// # Counting
//
// BytesOut counts bytes written to sockets, not bytes handed to gnet: after each Write, what gnet
// still queues is carried in the connection's context and counted once gnet no longer holds it,
// at the next OnTraffic (reading resumes only when the queue has drained) or in OnClose. What is
// still queued at OnClose gets one non-blocking flush that no handler sees and is not counted, so
// BytesOut can fall short by up to one read's worth per connection that closes with echoes queued.
//
// # Close
//
// Close triggers the stop through Engine.Stop with an already cancelled context: Stop then
// starts the shutdown and returns at once, instead of polling every 500 ms for it to finish. Close
// then waits up to 30 s for gnet.Run to return: by then every loop goroutine has exited and every
// connection, listener, epoll fd and eventfd gnet opened is closed.
package async
