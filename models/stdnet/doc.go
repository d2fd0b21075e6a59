// Package stdnet is the baseline: what a Go programmer writes without thinking about IO models.
// net.Listen, one goroutine per connection, a blocking-looking Read and Write on a net.Conn.
//
// It looks like the thread-per-connection model but is not one. Underneath, Go's runtime runs
// the epoll model for us (internal/poll and runtime/netpoll_epoll.go): a goroutine whose Read
// would block is parked, the fd is registered edge-triggered with one epoll instance, and the
// scheduler resumes the goroutine when epoll says the fd is readable. So a blocked connection
// costs a parked goroutine (a few KiB of stack) rather than an OS thread.
//
// Cost of one echoed message: two read(2) and one write(2). In closed-loop ping-pong the
// goroutine reads again as soon as it has echoed, before the client has had the echo and sent
// its next message, so every message has one read that returns the message and one that returns
// EAGAIN, after which the goroutine parks, the netpoller's epoll_pwait (shared by every
// connection ready at once) reports the fd, and the scheduler resumes it. results/syscalls.md
// has the counts. Waiting for data happens in the runtime's netpoller; copying happens in
// read(2), in the goroutine, into a buffer per connection of sockutil.ReadBufferSize (or the
// outbound limit, if smaller), as in every model.
//
// The per-message handler (-work, -block; server.Handler) runs in the connection's goroutine,
// between Read and Write, so a slow handler holds back only its own connection: -block sleeps in
// time.Sleep, which parks the goroutine and leaves its thread to others, as a Go database client
// waiting on the netpoller would; -work holds a P, so only as many handlers compute at once as
// GOMAXPROCS allows, and the scheduler preempts them every 10 ms to let the other goroutines run.
//
// Where it breaks: memory per connection (a goroutine stack plus its buffer, held even while idle)
// and scheduling overhead at high connection counts. Every chart in echobench shows it, because
// it is what a Go user would pick instead of any other model here.
package stdnet
