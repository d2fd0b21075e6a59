// Package nonblocking is the busy-poll server: one thread, every socket O_NONBLOCK, and a loop
// that asks each of them in turn whether it has anything, again and again. It is the first step
// away from a thread per connection, as in Bendersky's "Concurrent servers" part 3: one thread
// serves everyone because no call ever blocks, and the price is that it never rests.
//
// Each pass of the loop tries accept4(2) until EAGAIN (at most sockutil.AcceptBatch clients a
// pass), then one read(2) on every connection, then one sendto(2) on every connection whose
// outbound queue is not empty. A write can fail with EAGAIN as well as a read, when the client
// is slow to read, so the echo that did not fit waits in that connection's queue (the classic
// w_list), a sockutil.Outbound bounded by the outbound limit; a full queue stops the loop from
// reading that connection until half of it has drained, and TCP flow control stalls the client
// (backpressure).
//
// Cost of one echoed message: read(2), then sendto(2) with MSG_NOSIGNAL straight from the read
// buffer when nothing is queued, both through sockutil's raw non-blocking pair. On top of those,
// the polling: every pass makes an accept4, which returns EAGAIN unless a client is connecting,
// and a read on every connection, and each connection that has nothing yet costs a read that
// returns EAGAIN. How many of those fall on one message depends on how much is ready per pass:
// with every client busy most reads find a message and the surplus is a fraction of a read per
// message, but it rises as the load falls, and an idle server makes the same O(connections)
// calls each pass for no message at all, continuously. results/syscalls.md has the counts.
//
// Where it waits: nowhere. There is no readiness wait; the loop polls, and its thread is always
// runnable, so it takes a whole core whenever the scheduler gives it one, whether there is one
// message a second or none. Where it copies: in read(2), into
// the one read buffer the loop shares between connections, and a second time into the outbound
// queue only for the part of an echo the client's socket would not take.
//
// With -poll-sleep D (Config.PollSleep), a pass that accepted, read and sent nothing is followed
// by a sleep of D, and the model becomes a crude multiplexer: rather than ask the kernel which
// sockets are ready and sleep until one is, as select and epoll do, it sleeps for a fixed time
// and then asks every socket again. An idle server then costs one pass per D instead of a core,
// and pays in latency: a message that arrives just after an idle pass waits up to D (plus the
// timer's slack) for the next one, so at a low message rate every round trip can gain up to D.
// Under load, when every pass finds something to do, it never sleeps and is the busy loop again.
//
// The per-message handler (-work, -block; server.Handler) runs inline on the loop's thread, right
// after the read that got the message: while it runs, no socket is polled, so a handler that takes
// D holds every other connection, and every client waiting to connect, for D.
//
// Where it breaks: the core it burns, taken from every other process on the machine (on a
// two-core box, half of it), and latency that grows with the connection count, since a message
// waits for the pass to come round to its connection, and a pass does a syscall per connection.
// One thread also caps throughput at one core. select, poll and epoll remove the polling: the
// kernel says which sockets are ready and the thread sleeps until one is.
package nonblocking
