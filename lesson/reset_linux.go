package lesson

// Claim 5's measurements: what a readiness call and a read see of an RST, on raw fds, and what
// each model does with resets.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"echobench/server"
)

// readinessTimeout is how long a readiness call may wait for the reset to show.
const readinessTimeout = time.Second

// rawPair is a connected loopback pair of blocking fds: client and the server's accepted end.
func rawPair() (client, served int, err error) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return -1, -1, fmt.Errorf("bind 127.0.0.1:0: %w", err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		return -1, -1, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		return -1, -1, fmt.Errorf("getsockname: %w", err)
	}
	client, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(client, sa); err != nil {
		unix.Close(client)
		return -1, -1, fmt.Errorf("connect: %w", err)
	}
	served, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(client)
		return -1, -1, fmt.Errorf("accept: %w", err)
	}
	return client, served, nil
}

// resetClient closes fd with SO_LINGER 0, which sends an RST instead of a FIN.
func resetClient(fd int) error {
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return fmt.Errorf("SO_LINGER 0: %w", err)
	}
	return unix.Close(fd)
}

// readOutcome is what one read returned, in errno words: "ECONNRESET", "EAGAIN", "EOF", "N bytes".
func readOutcome(fd int) string {
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue // a signal, not the socket's answer
		case err != nil:
			return unix.ErrnoName(err.(unix.Errno))
		case n == 0:
			return "EOF"
		}
		return fmt.Sprintf("%d bytes", n)
	}
}

// resetSeen is what one way of waiting saw of a reset, and what the read after it returned.
type resetSeen struct {
	Way      string // select, poll, epoll, non-blocking read
	Reported string // what the call reported ("readable", revents, events), or "nothing" on timeout
	Read     string // the read after it
}

// seeReset makes a fresh pair, resets the client, and asks way what it sees on the served end.
func seeReset(way string) (resetSeen, error) {
	client, served, err := rawPair()
	if err != nil {
		return resetSeen{}, err
	}
	defer unix.Close(served)
	seen := resetSeen{Way: way}
	if way == "non-blocking read" {
		if err := unix.SetNonblock(served, true); err != nil {
			unix.Close(client)
			return seen, fmt.Errorf("O_NONBLOCK: %w", err)
		}
		seen.Reported = "before the reset: " + readOutcome(served) // the notes' BlockingIOError
	}
	if err := resetClient(client); err != nil {
		return seen, err
	}
	switch way {
	case "select":
		var r, x unix.FdSet
		r.Set(served)
		x.Set(served)
		tv := unix.NsecToTimeval(readinessTimeout.Nanoseconds())
		n, err := unix.Select(served+1, &r, nil, &x, &tv)
		if err != nil {
			return seen, fmt.Errorf("select: %w", err)
		}
		seen.Reported = "nothing"
		if n > 0 {
			var got []string
			if r.IsSet(served) {
				got = append(got, "readable")
			}
			if x.IsSet(served) {
				got = append(got, "exceptional")
			}
			seen.Reported = strings.Join(got, ", ")
		}
	case "poll":
		fds := []unix.PollFd{{Fd: int32(served), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(readinessTimeout.Milliseconds()))
		if err != nil {
			return seen, fmt.Errorf("poll: %w", err)
		}
		seen.Reported = "nothing"
		if n > 0 {
			seen.Reported = flagNames(uint32(fds[0].Revents), pollNames)
		}
	case "epoll":
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return seen, fmt.Errorf("epoll_create1: %w", err)
		}
		defer unix.Close(ep)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(served)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, served, &ev); err != nil {
			return seen, fmt.Errorf("epoll_ctl add: %w", err)
		}
		evs := make([]unix.EpollEvent, 1)
		n, err := unix.EpollWait(ep, evs, int(readinessTimeout.Milliseconds()))
		if err != nil {
			return seen, fmt.Errorf("epoll_wait: %w", err)
		}
		seen.Reported = "nothing"
		if n > 0 {
			seen.Reported = flagNames(evs[0].Events, epollNames)
		}
	case "blocking read":
		seen.Reported = "(the read itself waits)"
	}
	seen.Read = readOutcome(served)
	return seen, nil
}

var pollNames = []flagName{{unix.POLLIN, "POLLIN"}, {unix.POLLOUT, "POLLOUT"}, {unix.POLLERR, "POLLERR"},
	{unix.POLLHUP, "POLLHUP"}, {unix.POLLRDHUP, "POLLRDHUP"}}

var epollNames = []flagName{{unix.EPOLLIN, "EPOLLIN"}, {unix.EPOLLOUT, "EPOLLOUT"}, {unix.EPOLLERR, "EPOLLERR"},
	{unix.EPOLLHUP, "EPOLLHUP"}, {unix.EPOLLRDHUP, "EPOLLRDHUP"}}

type flagName struct {
	bit  uint32
	name string
}

func flagNames(v uint32, names []flagName) string {
	var out []string
	for _, n := range names {
		if v&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, "|")
}

// modelReset is what one model did with resets: whether it closed every reset connection and
// still echoed afterwards.
type modelReset struct {
	Model          string
	Closed, Echoes bool
	Why            string // why it could not be tried
}

// resetStorm resets rstConns connections mid-transfer three times against model, then checks
// that its own count of open connections returns to zero and that it still echoes.
func resetStorm(t *Trial, model string) modelReset {
	out := modelReset{Model: model}
	srv, err := t.StartServer(model, server.Config{})
	if err != nil {
		out.Why = err.Error()
		return out
	}
	defer Stop(srv)
	for range 3 {
		conns, err := dialAll(srv.Addr, rstConns)
		if err != nil {
			out.Why = err.Error()
			return out
		}
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(make([]byte, 32<<10)) // a write cut short is still mid-transfer: what matters is the reset
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}
	c, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
	if err == nil {
		out.Echoes = ping(c, 5*time.Second)
		c.Close()
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		st, err := srv.RequestStats(time.Second)
		if err == nil && st.Active == 0 {
			out.Closed = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

// resetFigures are claim 5's measurements.
type resetFigures struct {
	Seen   []resetSeen
	Models []modelReset
}

func judgeReset(f resetFigures) Verdict {
	var sel *resetSeen
	for i := range f.Seen {
		if f.Seen[i].Way == "select" {
			sel = &f.Seen[i]
		}
	}
	if sel == nil {
		return Verdict{Outcome: NotMeasurable, Why: "select was not tried"}
	}
	var bad []string
	for _, m := range f.Models {
		if m.Why == "" && (!m.Closed || !m.Echoes) {
			bad = append(bad, m.Model)
		}
	}
	models := fmt.Sprintf(" Every model that ran closed its reset connections and kept echoing, except: %s.", orNone(bad))
	if strings.Contains(sel.Reported, "readable") && sel.Read == "ECONNRESET" {
		return Verdict{Outcome: DoesNotHold, Why: "select reported the reset socket " + sel.Reported + " and the read after it returned " +
			"ECONNRESET, Python's ConnectionResetError: select sees the reset as readiness, as poll and epoll do, and the " +
			"error comes out of the recv. BlockingIOError is not something select detects either: it is the EAGAIN of a " +
			"non-blocking recv with nothing to read." + models}
	}
	if sel.Reported == "nothing" {
		return Verdict{Outcome: Holds, Why: "select reported nothing within " + readinessTimeout.String() + " of the reset." + models}
	}
	return Verdict{Outcome: NotMeasurable, Why: fmt.Sprintf("select reported %q and the read returned %s; the rule decides neither.", sel.Reported, sel.Read)}
}

// resetModels are the models claim 5 storms with resets: every one.
var resetModels = []string{"blocking", "process", "nonblocking", "select", "epoll", "async", "stdnet", "uring"}

func runReset(t *Trial) (Finding, error) {
	var f Finding
	var fig resetFigures
	t.Record("bin/echolesson -only 5   # the raw select/poll/epoll/read part runs inside the lesson")
	for _, way := range []string{"select", "poll", "epoll", "blocking read", "non-blocking read"} {
		seen, err := seeReset(way)
		if err != nil {
			return f, fmt.Errorf("%s: %w", way, err)
		}
		fig.Seen = append(fig.Seen, seen)
		f.Notes = append(f.Notes, fmt.Sprintf("%s: reported %s; the read then returned %s", way, seen.Reported, seen.Read))
	}
	t.Record(fmt.Sprintf("python3 ../shared/tools/echocheck.py rststorm ADDR --conns %d --pid PID   # the same storm, from a tool we did not write", rstConns))
	for _, m := range resetModels {
		r := resetStorm(t, m)
		fig.Models = append(fig.Models, r)
		if r.Why != "" {
			f.Notes = append(f.Notes, fmt.Sprintf("%s could not be tried: %s", m, r.Why))
			continue
		}
		f.Figures = append(f.Figures,
			Figure{Name: m + ": closed every reset connection", Value: b2f(r.Closed), Unit: "bool"},
			Figure{Name: m + ": echoes after the resets", Value: b2f(r.Echoes), Unit: "bool"})
	}
	f.Verdict = judgeReset(fig)
	return f, nil
}
