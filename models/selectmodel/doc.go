// Package selectmodel is the select(2) model: one thread, non-blocking sockets, and one system
// call that waits on all of them at once. (select is a Go keyword, so the package cannot be
// named after it; the model registers as "select".)
//
// Every turn of the loop builds two fd_sets from scratch: the read set holds the listener, a
// wakeup eventfd and every connection that may still send; the write set holds only the
// connections with echoed bytes the socket has not taken yet. select blocks until one of them is
// ready, the loop accepts, reads and writes what it reported, and the sets are rebuilt, because
// select overwrites them with its answer. A client that stops reading has its bytes queued in a
// sockutil.Outbound up to cfg.Outbound(); past that its socket leaves the read set until half
// has drained (backpressure), so TCP flow control stalls that client alone. There is one loop
// whatever cfg.Loops says, always locked to its OS thread: that is the model.
//
// Cost of one echoed message: read(2) and sendto(2), through sockutil's raw non-blocking pair,
// plus a share of one select (pselect6(2) on amd64 and arm64, same fd_sets). One select reports
// every socket that is ready, so with many busy connections one call serves many messages and
// its share is a small fraction of a call; with one connection it is a whole call per message.
// results/syscalls.md has the counts. Because the loop blocks in a system call of its own,
// outside the netpoller, the Go runtime hands the thread's P to another thread while it waits
// (the hand-off the epoll model's doc.go describes), which shows as occasional futex calls
// beside those above.
//
// Waiting for data happens in select; copying happens in read(2), from the socket into the one
// buffer of sockutil.ReadBufferSize the loop shares among all connections, and sendto(2) sends
// it straight back from there. Only bytes the socket could not take are copied again, into that
// connection's outbound buffer.
//
// Where it breaks:
//   - The FD_SETSIZE ceiling. An fd_set is a 1024-bit bitmap, so select cannot watch fd 1024 or
//     above, and setting such a bit writes outside the bitmap. A connection accepted on such an
//     fd is closed at once, counted in Stats().Rejected and logged ("select(2) cannot watch fd
//     1024 or above; use -model epoll", rate-limited); the others are still served. Stdio, the
//     Go runtime's own fds, the listener and the eventfd take the lowest numbers, so one
//     echoserver process serves about 1015 clients at once.
//   - O(highest fd) per call, twice. The kernel walks every fd below nfds and polls each watched
//     socket on every call, whether or not it is ready, and the loop then tests every bit to
//     find the ready ones; the sets are rebuilt and copied in and out each turn. With a thousand
//     mostly idle connections, one ready socket costs a thousand-entry scan. epoll keeps the
//     interest set in the kernel and returns only the ready fds.
//   - One thread: a single core serves every connection, however many cores the machine has.
//     The per-message handler (-work, -block; server.Handler) runs inline on it, between a
//     connection's read and its send, so a handler that takes D holds every other connection for
//     D: select is not called again until the handler returns.
package selectmodel
