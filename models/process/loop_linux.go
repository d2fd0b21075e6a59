package process

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// runChild is the child's main: reexec.Run calls it when this binary was started by the parent
// as reexecRole, with childArgs: the role (roleConn or roleWorker), the parent's pid, and the
// server's configuration as flags. It returns the exit status.
func runChild(args []string) int {
	role, parent, cfg, err := parseChildArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "process child: %v\n", err)
		return 2
	}
	if strconv.Itoa(os.Getppid()) != parent {
		// We were reparented: the parent is gone, and nobody would count or stop us, so serve
		// nothing. Go's forkExec already kills a child whose parent died before Pdeathsig was
		// armed; this is a redundant safety net, cheap enough to keep.
		return 1
	}
	// The blocking echo holds one buffer per connection, sized by sockutil.ReadBuffer's rule.
	c := &childState{
		report:  childReportFD,
		conn:    -1,
		buf:     make([]byte, sockutil.ReadBuffer(cfg.Outbound())),
		handler: cfg.Handler(),
	}
	// SIGINT is meant for the parent (a terminal's Ctrl-C). The child already runs in a process
	// group of its own (spawn sets Setpgid), so a terminal cannot reach it; ignoring SIGINT
	// also covers a kill -INT aimed at it directly. Only the parent's Close stops a child.
	signal.Ignore(syscall.SIGINT)
	// SIGTERM is the parent's Close. Handling it ourselves, rather than dying, lets the child
	// end its connection in order and still report the bytes it moved.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		c.stop()
	}()
	switch role {
	case roleConn:
		return c.serveOne(childSocketFD)
	case roleWorker:
		return c.serveForever(childSocketFD)
	default:
		fmt.Fprintf(os.Stderr, "process child: role %q: want %q or %q\n", role, roleConn, roleWorker)
		return 2
	}
}

// parseChildArgs is childArgs read back: the role, the parent's pid, and the configuration.
func parseChildArgs(args []string) (role, parent string, cfg server.Config, err error) {
	if len(args) < 2 {
		return "", "", cfg, fmt.Errorf("arguments %q: want role, parent pid and the server's flags", args)
	}
	flags := flag.NewFlagSet("process child", flag.ContinueOnError)
	flags.SetOutput(io.Discard) // the error returned says what is wrong
	cfg.RegisterFlags(flags)
	if err := flags.Parse(args[2:]); err != nil {
		return "", "", cfg, fmt.Errorf("server flags %q: %w", args[2:], err)
	}
	return args[0], args[1], cfg, nil
}

// childState is what a child's main goroutine shares with its SIGTERM handler: the connection
// being served, if any, and whether the parent asked us to stop. mu orders the two, so the
// handler never shuts down an fd that was closed (and maybe reused) under it, and never exits
// the process between the end of a connection and its report.
type childState struct {
	report   int
	buf      []byte
	handler  server.Handler // the server's per-message cost, run on the child's one thread
	mu       sync.Mutex
	conn     int // -1 while no connection is being served
	stopping bool
}

// serveOne is a connection child's whole life: echo the connection at fd, report, exit.
func (c *childState) serveOne(fd int) int {
	if !c.begin(fd) {
		unix.Close(fd)
		return 0
	}
	if err := c.end(c.echo(fd, &meter{report: c.report})); err != nil {
		fmt.Fprintf(os.Stderr, "process child: %v\n", err)
		return 1
	}
	return 0
}

// serveForever is a prefork worker's loop: accept one connection, report it, echo it, report
// its end, repeat. accept(2) blocks in the kernel; when several workers block on one listener,
// Linux wakes only one of them per connection (an exclusive wait), so there is no thundering herd.
func (c *childState) serveForever(listener int) int {
	for {
		fd, _, err := unix.Accept4(listener, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case sockutil.IsAcceptRetryable(err):
			continue // a signal, or a client that failed while queued: take the next
		case sockutil.IsResourceShortage(err):
			// The connection stays in the backlog, where another worker may take it. Retrying
			// at once would spin on an error that only time or a closed fd clears.
			time.Sleep(acceptBackoff)
			continue
		default:
			// EINVAL, EBADF: the listener is broken. The parent replaces this worker, and gives
			// up after maxQuickDeaths replacements in a row die the same way.
			fmt.Fprintf(os.Stderr, "process worker: accept4 on fd %d: %v\n", listener, err)
			return 1
		}
		if !c.begin(fd) {
			unix.Close(fd)
			return 0
		}
		if err := writeRecord(c.report, record{kind: recOpened}); err != nil {
			fmt.Fprintf(os.Stderr, "process worker: %v\n", err)
			return 1 // the parent is gone
		}
		if err := c.end(c.echo(fd, &meter{report: c.report})); err != nil {
			fmt.Fprintf(os.Stderr, "process worker: %v\n", err)
			return 1
		}
		if c.isStopping() {
			return 0
		}
	}
}

// begin makes fd the connection being served, unless we are stopping.
func (c *childState) begin(fd int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	c.conn = fd
	if err := sockutil.SetNoDelay(fd); err != nil {
		fmt.Fprintf(os.Stderr, "process child: %v\n", err)
	}
	return true
}

// end closes the connection and reports the bytes that m has not reported yet. Holding mu across
// both means a SIGTERM arriving now waits for the report before it exits the process.
func (c *childState) end(m *meter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	unix.Close(c.conn)
	c.conn = -1
	in, out := m.unreported()
	return writeRecord(c.report, record{kind: recClosed, in: in, out: out})
}

func (c *childState) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// stop is the SIGTERM handler. An idle worker, blocked in accept, has nothing to finish and exits
// here. A child serving a connection shuts it down instead: its blocked read returns 0 (or its
// blocked write EPIPE), the echo loop ends, and the main goroutine reports and exits.
func (c *childState) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	if c.conn < 0 {
		os.Exit(0)
	}
	unix.Shutdown(c.conn, unix.SHUT_RDWR)
}

// echo copies everything the client sends back to it, with blocking read(2) and sendto(2) on the
// connection's fd (sockutil.Read and sockutil.Send, the runtime-aware pair), until the client
// half-closes or the connection fails. It counts the bytes read and written in m, which reports
// them to the parent as they accumulate, and returns m.
//
// Blocking is the point of this model: the kernel parks the thread inside read(2) until data
// arrives, and inside sendto(2) while the client's receive window is full. Until the write
// completes this loop does not read again, so a client that never reads is simply not read from
// (backpressure by blocking) and costs one buffer. Raw syscalls rather than os.File or
// net.FileConn keep the Go runtime's netpoller out of the child entirely.
func (c *childState) echo(fd int, m *meter) *meter {
	buf := c.buf
	for {
		n, err := sockutil.Read(fd, buf)
		if err != nil {
			return m // ECONNRESET, ETIMEDOUT, or our own shutdown: the connection is over
		}
		if n == 0 {
			// The client's half-close. Every byte it sent has already been written back (the
			// writes below are synchronous), so closing now sends the client its EOF.
			return m
		}
		m.in += uint64(n)
		if !c.handler.Idle() {
			c.handler.Handle(buf[:n])
		}
		for sent := 0; sent < n; {
			w, err := sockutil.Send(fd, buf[sent:n])
			if err != nil {
				return m // EPIPE or ECONNRESET: the client is gone
			}
			sent += w
			m.out += uint64(w)
		}
		m.progress()
	}
}

// A meter counts one connection's bytes and reports them to the parent while the connection
// lives, in recProgress records of what moved since the last report, so that a stats line taken
// mid-run includes long-lived connections. It reports after an echo once progressBytes are
// unreported or progressEvery has passed since the last report: at most one extra 17-byte pipe
// write per second or per 64 MiB, and a clock read (vDSO, no syscall) per message. A connection
// that goes idle keeps its last unreported bytes (under a second's worth) until it next moves
// data or ends; the recClosed record carries whatever is left.
type meter struct {
	report          int
	in, out         uint64
	sentIn, sentOut uint64
	sentAt          time.Time
}

// progress reports what moved since the last report, if enough did or long enough ago.
func (m *meter) progress() {
	now := time.Now()
	if m.sentAt.IsZero() {
		m.sentAt = now // the connection's first echo starts the clock
	}
	if m.in-m.sentIn < progressBytes && now.Sub(m.sentAt) < progressEvery {
		return
	}
	in, out := m.unreported()
	// A failed write means the parent is gone; the connection's end will say so.
	writeRecord(m.report, record{kind: recProgress, in: in, out: out})
	m.sentAt = now
}

// unreported returns the bytes moved since the last report and counts them as reported.
func (m *meter) unreported() (in, out uint64) {
	in, out = m.in-m.sentIn, m.out-m.sentOut
	m.sentIn, m.sentOut = m.in, m.out
	return in, out
}

// writeRecord writes one record to the report pipe. A record is smaller than PIPE_BUF, so the
// write is atomic and never partial.
func writeRecord(fd int, r record) error {
	for {
		_, err := unix.Write(fd, r.encode())
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("report to parent on fd %d: %w", fd, err)
		}
		return nil
	}
}
