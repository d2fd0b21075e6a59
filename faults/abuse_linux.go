package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

func garbage() Scenario {
	const conns, size = 20, 1 << 20
	return Scenario{
		Name: "garbage",
		Rule: fmt.Sprintf("%d clients send %d KiB of random bytes each, with 0-byte writes between the chunks: every byte comes back as sent, and the server serves on", conns, size>>10),
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			var bad atomic.Int64
			var mu sync.Mutex
			errs := map[string]int{}
			var wg sync.WaitGroup
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := randomEcho(srv.Addr, uint64(i), size); err != nil {
						bad.Add(1)
						mu.Lock()
						errs[err.Error()]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			aliveErr := alive(srv)
			v, why := judge(e, "garbage", bad.Load() == 0 && aliveErr == nil)
			return Cell{Verdict: v, Figure: fmt.Sprintf("%d/%d exact", conns-int(bad.Load()), conns),
				Detail: fmt.Sprintf("failures: %s; after: %v. %s", formatCounts(errs), aliveErr, why)}
		},
	}
}

// randomEcho sends size random bytes in random chunks, a 0-byte write after each, and reads the
// echo concurrently, which must be the same bytes.
func randomEcho(addr string, seed uint64, size int) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rng := rand.New(rand.NewPCG(seed, 42))
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < size; {
			n := min(size-off, 1+rng.IntN(16<<10))
			if _, err := c.Write(want[off : off+n]); err != nil {
				werr <- err
				return
			}
			if _, err := c.Write(nil); err != nil {
				werr <- fmt.Errorf("a 0-byte write: %w", err)
				return
			}
			off += n
		}
		werr <- nil
	}()
	got := make([]byte, size)
	_, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %v", errName(err))
	}
	if rerr != nil {
		return fmt.Errorf("read: %v", errName(rerr))
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo differs")
	}
	return nil
}

func idleCost() Scenario {
	return Scenario{
		Name: "idle-cost",
		Rule: "N clients connect and send nothing: the server keeps them at a per-connection memory cost the figure gives, uses under 25% of a core while they idle, and serves others",
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			t0, err := tree(srv.PID)
			if err != nil {
				return failed(err)
			}
			conns, dialErrs := dialMany(srv.Addr, e.Scale.IdleConns)
			defer closeAll(conns)
			time.Sleep(500 * time.Millisecond)
			cpu, err := cpuShare(srv.PID, e.Scale.Window)
			if err != nil {
				return failed(err)
			}
			t1, _ := tree(srv.PID)
			aliveErr := alive(srv)
			perConn := float64(int64(t1.RSSBytes)-int64(t0.RSSBytes)) / float64(max(1, len(conns)))
			v, why := judge(e, "idle-cost", aliveErr == nil && cpu < 0.25 && len(dialErrs) == 0)
			return Cell{Verdict: v, Figure: fmt.Sprintf("%d idle: %.0f KiB/conn, CPU %.0f%%, %d thr", len(conns), perConn/1024, 100*cpu, t1.Threads),
				Detail: fmt.Sprintf("RSS %s before, %s with %d idle connections (%d processes, %d threads); connect failures %s; others: %v. %s",
					mib(t0.RSSBytes), mib(t1.RSSBytes), len(conns), t1.Processes, t1.Threads, formatCounts(dialErrs), aliveErr, why)}
		},
	}
}

func churn() Scenario {
	const workers = 4
	return Scenario{
		Name: "churn",
		Rule: "clients open and close connections as fast as they can: the server survives, its fd count settles back, and it serves afterwards",
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			fds0, err := settledFDs(srv.PID, 5*time.Second)
			if err != nil {
				return failed(err)
			}
			var opened atomic.Int64
			var mu sync.Mutex
			errs := map[string]int{}
			stop := time.Now().Add(e.Scale.Churn)
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) && ctx.Err() == nil {
						c, err := net.DialTimeout("tcp", srv.Addr, time.Second)
						if err != nil {
							mu.Lock()
							errs[errName(err)]++
							mu.Unlock()
							continue
						}
						opened.Add(1)
						c.Close()
					}
				}()
			}
			wg.Wait()
			stopped := time.Now()
			fds1, ferr := settledFDs(srv.PID, 15*time.Second)
			aliveErr := alive(srv)
			rate := float64(opened.Load()) / e.Scale.Churn.Seconds()
			held := ferr == nil && aliveErr == nil && fds1 <= fds0+2
			v, why := judge(e, "churn", held)
			if v == Limitation {
				v, why, fds1, aliveErr = catchUp(srv, fds0+2, stopped, why)
			}
			return Cell{Verdict: v, Figure: fmt.Sprintf("%.0f conns/s, fds %d -> %d", rate, fds0, fds1),
				Detail: fmt.Sprintf("%d connections opened and closed by %d clients in %v (failures: %s); after: %v. %s", opened.Load(), workers, e.Scale.Churn, formatCounts(errs), aliveErr, why)}
		},
	}
}
