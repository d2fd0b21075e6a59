package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

func resetStorm() Scenario {
	return Scenario{
		Name: "reset-storm",
		Rule: "N connections close with SO_LINGER 0 mid-transfer, three times: no crash, the server's fd count settles back to where it was, and other clients keep echoing throughout",
		Fast: true,
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			fds0, err := settledFDs(srv.PID, 5*time.Second)
			if err != nil {
				return failed(err)
			}
			// Others, connected before the storms, echo on the same connections throughout.
			stormDone := make(chan struct{})
			var bgEchoes int64
			bgErrs := map[string]int{}
			bgConns, errs := dialMany(srv.Addr, 3)
			defer closeAll(bgConns)
			for k, v := range errs {
				bgErrs[k] += v
			}
			var bg sync.WaitGroup
			bg.Add(1)
			go func() {
				defer bg.Done()
				bgEchoes = echoUntil(bgConns, stormDone, bgErrs)
			}()
			reset, dialErrs := 0, map[string]int{}
			payload := make([]byte, 32<<10)
			for range e.Scale.ResetRounds {
				conns, errs := dialMany(srv.Addr, e.Scale.ResetConns)
				for k, v := range errs {
					dialErrs[k] += v
				}
				for _, c := range conns {
					c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
					c.Write(payload)
				}
				for _, c := range conns {
					c.(*net.TCPConn).SetLinger(0) // close sends RST, not FIN
					c.Close()
					reset++
				}
			}
			close(stormDone)
			bg.Wait()
			closeAll(bgConns) // before counting: the server's fds are compared with before they opened
			stopped := time.Now()
			fds1, err := settledFDs(srv.PID, 10*time.Second)
			if err != nil {
				return failed(fmt.Errorf("after the storms (the server may have died): %w", err))
			}
			aliveErr := alive(srv)
			ok := aliveErr == nil && fds1 <= fds0 && bgEchoes > 0 && len(bgErrs) == 0
			v, why := judge(e, "reset-storm", ok)
			if v == Limitation {
				v, why, fds1, aliveErr = catchUp(srv, fds0, stopped, why)
				if bgEchoes == 0 || len(bgErrs) > 0 {
					v, why = Breaks, ""
				}
			}
			detail := fmt.Sprintf("%d connections reset over %d storms (connect failures: %s); others echoed %d times meanwhile (errors: %s); fds %d before, %d after", reset, e.Scale.ResetRounds, formatCounts(dialErrs), bgEchoes, formatCounts(bgErrs), fds0, fds1)
			if aliveErr != nil {
				detail += "; after the storms: " + aliveErr.Error()
			}
			return Cell{Verdict: v, Figure: fmt.Sprintf("%d resets, fds %d -> %d", reset, fds0, fds1), Detail: detail + ". " + why}
		},
	}
}

// echoUntil echoes 64-byte messages on every connection in turn until stop is closed, and
// returns how many came back; a failed echo is counted in errs and drops that connection.
func echoUntil(conns []net.Conn, stop <-chan struct{}, errs map[string]int) int64 {
	var n int64
	live := append([]net.Conn(nil), conns...)
	msg := make([]byte, 64)
	for len(live) > 0 {
		select {
		case <-stop:
			return n
		default:
		}
		for i := 0; i < len(live); i++ {
			if err := echoOnce(live[i], msg, 10*time.Second); err != nil {
				errs[errName(err)]++
				live = append(live[:i], live[i+1:]...)
				i--
				continue
			}
			n++
		}
	}
	return n
}

func halfClose() Scenario {
	sizes := []int{0, 1, 1 << 20}
	return Scenario{
		Name: "half-close",
		Rule: "the client shuts down its write side after 0 B, 1 B and 1 MiB: every byte comes back, then EOF",
		Fast: true,
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			var bad []string
			for _, size := range sizes {
				if err := halfCloseEcho(srv.Addr, size); err != nil {
					bad = append(bad, fmt.Sprintf("%d B: %v", size, err))
				}
			}
			v, why := judge(e, "half-close", len(bad) == 0)
			fig := fmt.Sprintf("%d of %d sizes echoed in full, then EOF", len(sizes)-len(bad), len(sizes))
			return Cell{Verdict: v, Figure: fig, Detail: fmt.Sprint(bad, " ", why)}
		},
	}
}

// halfCloseEcho sends size bytes, shuts down its write side, and reads until EOF, which must
// come after exactly the bytes it sent.
func halfCloseEcho(addr string, size int) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + 3)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(c) // up to EOF
	if err := <-werr; err != nil {
		return fmt.Errorf("write and shutdown: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("read after %d bytes: %w (want EOF)", len(got), rerr)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("got %d bytes back before EOF, want the %d sent", len(got), size)
	}
	return nil
}
