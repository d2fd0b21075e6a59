package faults

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// served tries one echo on every connection at once, each within timeout, and returns how many
// answered; the rest are counted by error.
func served(conns []net.Conn, timeout time.Duration) (int, map[string]int) {
	var ok atomic.Int64
	var mu sync.Mutex
	errs := map[string]int{}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := echoOnce(c, []byte(fmt.Sprintf("conn %d", i)), timeout); err != nil {
				mu.Lock()
				errs[errName(err)]++
				mu.Unlock()
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	return int(ok.Load()), errs
}

func fdExhaustion() Scenario {
	const nofile, conns = 128, 300
	return Scenario{
		Name: "fd-exhaustion",
		Rule: fmt.Sprintf("a server started with RLIMIT_NOFILE %d gets %d connections: it does not spin while out of fds (CPU under 25%% of a core), the excess waits or is refused, and once clients close, new ones are served", nofile, conns),
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start(fmt.Sprintf("-nofile=%d", nofile))
			if err != nil {
				return failed(err)
			}
			open, dialErrs := dialMany(srv.Addr, conns)
			time.Sleep(200 * time.Millisecond)
			cpu, err := cpuShare(srv.PID, e.Scale.Window)
			if err != nil {
				closeAll(open)
				return failed(err)
			}
			ok, errs := served(open, time.Second)
			closeAll(open)
			st, _ := statsOf(srv)
			again := aliveSoon(srv, 10*time.Second)
			held := cpu < 0.25 && again == nil
			v, why := judge(e, "fd-exhaustion", held)
			detail := fmt.Sprintf("%d connected (failed: %s); %d echoed within 1 s, the rest: %s; the server counted %d rejected; CPU %.0f%% of a core over %v while out of fds", len(open), formatCounts(dialErrs), ok, formatCounts(errs), st.Rejected, 100*cpu, e.Scale.Window)
			if again != nil {
				detail += "; after the clients closed: " + again.Error()
			} else {
				detail += "; served again after the clients closed"
			}
			return Cell{Verdict: v, Figure: fmt.Sprintf("CPU %.0f%%, %d/%d served, recovers: %v", 100*cpu, ok, len(open), again == nil), Detail: detail + ". " + why}
		},
	}
}

func select1024() Scenario {
	const n = 1100
	return Scenario{
		Name: "select-1024",
		Rule: fmt.Sprintf("%d connections, past select(2)'s FD_SETSIZE of 1024: each is served, or (select) refused at once and counted, the others unharmed", n),
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			conns, dialErrs := dialMany(srv.Addr, n)
			time.Sleep(500 * time.Millisecond)
			// A process per connection starts about a hundred a second: 30 s covers 1,100.
			ok, errs := served(conns, 30*time.Second)
			st, err := statsOf(srv)
			closeAll(conns)
			if err != nil {
				return failed(err)
			}
			aliveErr := aliveSoon(srv, 10*time.Second)
			fig := fmt.Sprintf("%d/%d served, %d refused (counted)", ok, len(conns), st.Rejected)
			detail := fmt.Sprintf("connect failures: %s; echo failures: %s", formatCounts(dialErrs), formatCounts(errs))
			if ok == len(conns) && len(dialErrs) == 0 && aliveErr == nil {
				return Cell{Verdict: Holds, Figure: fig, Detail: detail}
			}
			// A limitation is clean when every connection that was not served was refused and
			// counted, or is still waiting its turn (a pool's backlog), and the server still serves.
			clean := aliveErr == nil && ok > 0 && int(st.Rejected)+errs["timeout"] == len(conns)-ok
			v, why := judge(e, "select-1024", false)
			if v == Limitation && !clean {
				v, why = Breaks, ""
			}
			if aliveErr != nil {
				detail += "; " + aliveErr.Error()
			}
			return Cell{Verdict: v, Figure: fig, Detail: detail + ". " + why}
		},
	}
}

func connectBurst() Scenario {
	return Scenario{
		Name: "connect-burst",
		Rule: "N non-blocking connects at once against the listen backlog: every one completes or fails with a counted errno within 10 s, the server survives, refuses what it cannot hold with a count, and its fds settle back once they close",
		Run: func(ctx context.Context, e *Env) Cell {
			n := e.Scale.BurstConns
			if e.Row.Model == "process" && len(e.Row.Args) == 0 {
				// Each connection is a Go process of a few MiB: 10,000 of them would not fit
				// this machine's memory, whatever the model does right.
				n = min(n, 1000)
			}
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			fds0, err := settledFDs(srv.PID, 5*time.Second)
			if err != nil {
				return failed(err)
			}
			done, errs, took, err := burst(srv.Addr, n, 10*time.Second)
			if err != nil {
				return failed(err)
			}
			time.Sleep(500 * time.Millisecond)
			st, _ := statsOf(srv)
			fds1, ferr := settledFDs(srv.PID, 15*time.Second)
			aliveErr := alive(srv)
			failedConns := 0
			for _, v := range errs {
				failedConns += v
			}
			ok := aliveErr == nil && ferr == nil && fds1 <= fds0+2 && done+failedConns == n
			v, why := judge(e, "connect-burst", ok)
			detail := fmt.Sprintf("%d connects: %d completed in %v, failed: %s; the server accepted %d, refused %d; fds %d before, %d after", n, done, took.Round(time.Millisecond), formatCounts(errs), st.Accepted, st.Rejected, fds0, fds1)
			if aliveErr != nil {
				detail += "; " + aliveErr.Error()
			}
			return Cell{Verdict: v, Figure: fmt.Sprintf("%d/%d connected, %d refused, fds %d -> %d", done, n, st.Rejected, fds0, fds1), Detail: detail + ". " + why}
		},
	}
}

// burst starts n non-blocking connects to addr at once, waits up to timeout for them to finish,
// counts the failures by errno (the unfinished as ETIMEDOUT), closes them all, and returns how
// many completed and how long the last one took.
func burst(addr string, n int, timeout time.Duration) (done int, errs map[string]int, took time.Duration, err error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return 0, nil, 0, err
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("epoll_create1: %w", err)
	}
	defer unix.Close(ep)
	errs = map[string]int{}
	pending := map[int]bool{}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	start := time.Now()
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errs["socket "+unix.ErrnoName(err.(unix.Errno))]++
			continue
		}
		fds = append(fds, fd)
		switch err := unix.Connect(fd, sa); err {
		case nil:
			done++
		case unix.EINPROGRESS:
			pending[fd] = true
			ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd)}
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				return 0, nil, 0, fmt.Errorf("epoll_ctl add: %w", err)
			}
		default:
			errs[errName(err)]++
		}
	}
	events := make([]unix.EpollEvent, 256)
	deadline := start.Add(timeout)
	for len(pending) > 0 && time.Now().Before(deadline) {
		k, err := unix.EpollWait(ep, events, int(time.Until(deadline)/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, nil, 0, fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:k] {
			fd := int(ev.Fd)
			if !pending[fd] {
				continue
			}
			delete(pending, fd)
			unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, nil)
			if soErr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); soErr != 0 {
				errs[errName(unix.Errno(soErr))]++
			} else {
				done++
				took = time.Since(start)
			}
		}
	}
	if len(pending) > 0 {
		errs["ETIMEDOUT"] += len(pending)
	}
	return done, errs, took, nil
}

func threadCeiling() Scenario {
	return Scenario{
		Name: "thread-ceiling",
		Rule: "more connections than a thread- or process-per-connection model may run: the excess is refused and counted or waits in the backlog, never an abort of the server; those within the ceiling are served",
		Run: func(ctx context.Context, e *Env) Cell {
			var ceiling int
			var extra []string
			switch {
			case e.Row.Model == "blocking" && len(e.Row.Args) == 0:
				ceiling = 9000 // threadCeiling in models/blocking
			case e.Row.Model == "process" && len(e.Row.Args) == 0:
				// The cap follows the fd limit (two fds per child): a low limit brings it to a
				// count this machine's memory can hold, one Go process per connection.
				ceiling = 200
				extra = []string{fmt.Sprintf("-nofile=%d", 2*ceiling+64)}
			default:
				return Cell{Verdict: NotApplicable, Figure: "no per-connection thread or process", Detail: "the model serves every connection from a fixed set of threads or loops"}
			}
			srv, err := e.start(extra...)
			if err != nil {
				return failed(err)
			}
			n := ceiling + e.Scale.CeilingExtra
			conns, dialErrs := dialMany(srv.Addr, n)
			defer closeAll(conns)
			time.Sleep(time.Second)
			early, earlyErrs := served(conns[:min(50, len(conns))], 5*time.Second)
			st, err := statsOf(srv)
			if err != nil {
				return failed(err)
			}
			t, _ := tree(srv.PID)
			aliveErr := alive(srv)
			waited := false
			if aliveErr != nil && st.Rejected == 0 {
				// Not refused: then it must be waiting in the backlog, and be served once some
				// of those within the ceiling close.
				closeAll(conns)
				aliveErr = aliveSoon(srv, 20*time.Second)
				waited = aliveErr == nil
			}
			ok := (aliveErr == nil || st.Rejected > 0) && early == min(50, len(conns))
			select {
			case <-srv.Exited():
				ok = false
			default:
			}
			v, why := judge(e, "thread-ceiling", ok)
			detail := fmt.Sprintf("%d connections (connect failures %s): the first 50 echoed %d (errors %s); the server accepted %d, refused %d, ran %d threads in %d processes; the excess waited in the backlog and a new connection was served once the others closed: %v", n, formatCounts(dialErrs), early, formatCounts(earlyErrs), st.Accepted, st.Rejected, t.Threads, t.Processes, waited)
			if aliveErr != nil {
				detail += "; a new connection: " + aliveErr.Error()
			}
			return Cell{Verdict: v, Figure: fmt.Sprintf("%d past %d: %d refused, %d threads, %d procs", n-ceiling, ceiling, st.Rejected, t.Threads, t.Processes), Detail: detail + ". " + why}
		},
	}
}
