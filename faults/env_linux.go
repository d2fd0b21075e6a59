package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/server"
)

// EnvOptions are what every cell's environment shares.
type EnvOptions struct {
	// BinDir holds the built binaries (echoserver, echobench, echocompare, echosyscalls). ""
	// runs servers as this executable re-executed (child.FindBinary) and skips the scenarios
	// that run the other binaries.
	BinDir     string
	ServerCPUs []int // pin servers here; nil leaves them unpinned
	Stderr     io.Writer
}

// bin is the path of a built binary, or "" when there is no BinDir.
func (o EnvOptions) bin(name string) string {
	if o.BinDir == "" {
		return ""
	}
	return filepath.Join(o.BinDir, name)
}

// Env is one cell's environment: the row under test, the scale, and the servers it started,
// which cleanup stops.
type Env struct {
	Row   Row
	Scale Scale
	opts  EnvOptions
	mu    sync.Mutex
	srvs  []*child.Server
}

func newEnv(r Row, s Scale, o EnvOptions) *Env { return &Env{Row: r, Scale: s, opts: o} }

// start starts the row's server with the row's flags and extra ones; cleanup stops it.
func (e *Env) start(extra ...string) (*child.Server, error) {
	srv, err := child.Start(child.Options{
		Binary: e.opts.bin("echoserver"),
		Model:  e.Row.Model,
		Args:   append(append([]string{}, e.Row.Args...), extra...),
		CPUs:   e.opts.ServerCPUs,
		Stderr: e.opts.Stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", e.Row.Name, err)
	}
	e.mu.Lock()
	e.srvs = append(e.srvs, srv)
	e.mu.Unlock()
	return srv, nil
}

func (e *Env) cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.srvs {
		s.Stop(2 * time.Second)
	}
	e.srvs = nil
}

// failed is the cell of a scenario that could not be set up: a broken cell, saying why.
func failed(err error) Cell {
	return Cell{Verdict: Breaks, Figure: "setup failed", Detail: err.Error()}
}

// alive reports whether the server still runs and echoes a fresh connection.
func alive(srv *child.Server) error {
	select {
	case <-srv.Exited():
		return fmt.Errorf("server exited: %v; %s", srv.ExitError(), srv.StderrTail())
	default:
	}
	c, err := net.DialTimeout("tcp", srv.Addr, 3*time.Second)
	if err != nil {
		return fmt.Errorf("a new connection: %w", err)
	}
	defer c.Close()
	return echoOnce(c, []byte("still there?"), 5*time.Second)
}

// aliveSoon is alive, retried until it succeeds or within has passed.
func aliveSoon(srv *child.Server, within time.Duration) error {
	end := time.Now().Add(within)
	for {
		err := alive(srv)
		if err == nil || time.Now().After(end) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// catchUp judges a row whose limitation is a delay (a process per connection works through a
// queue of forks after a storm): it must still catch up within a minute of stopped, its fd count
// back to at most fds and a new connection served; the verdict says how long it took.
func catchUp(srv *child.Server, fds int, stopped time.Time, why string) (Verdict, string, int, error) {
	got, err := settledFDs(srv.PID, time.Minute)
	if err == nil {
		err = aliveSoon(srv, 10*time.Second)
	}
	if err != nil || got > fds {
		return Breaks, "", got, err
	}
	return Limitation, fmt.Sprintf("%s; it caught up %v after the load stopped", why, time.Since(stopped).Round(time.Second)), got, nil
}

// echoOnce writes p and reads exactly len(p) bytes back, which must equal p.
func echoOnce(c net.Conn, p []byte, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(p); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(p))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read the echo: %w", err)
	}
	if string(got) != string(p) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

// dialMany opens n connections, counting failures by error; it returns those it opened.
func dialMany(addr string, n int) ([]net.Conn, map[string]int) {
	conns := make([]net.Conn, 0, n)
	errs := map[string]int{}
	for range n {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			errs[errName(err)]++
			continue
		}
		conns = append(conns, c)
	}
	return conns, errs
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// errName is an error's errno name (ECONNREFUSED, ...), "timeout", "EOF", or its text.
func errName(err error) string {
	var errno unix.Errno
	switch {
	case errors.As(err, &errno):
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return errno.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF):
		return "EOF"
	}
	return err.Error()
}

// formatCounts is "ECONNREFUSED 3, timeout 1", sorted by name; "none" for no counts.
func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += k + " " + strconv.Itoa(m[k])
	}
	return s
}

// pingPong runs n connections echoing 64-byte messages back to back for d and returns the p99
// round trip and the number of echoes; a failed echo ends that connection and is counted.
func pingPong(ctx context.Context, addr string, n int, d time.Duration) (p99 time.Duration, echoes int64, errs map[string]int) {
	conns, errs := dialMany(addr, n)
	defer closeAll(conns)
	var mu sync.Mutex
	hist := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 2)
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 2)
			msg := make([]byte, 64)
			for j := range msg {
				msg[j] = byte(i + j)
			}
			for time.Now().Before(stop) && ctx.Err() == nil {
				t := time.Now()
				if err := echoOnce(c, msg, 10*time.Second); err != nil {
					mu.Lock()
					errs[errName(err)]++
					mu.Unlock()
					return
				}
				local.RecordValue(max(1, time.Since(t).Microseconds()))
			}
			mu.Lock()
			hist.Merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return time.Duration(hist.ValueAtQuantile(99)) * time.Microsecond, hist.TotalCount(), errs
}

// openFDs counts the fds a process has open.
func openFDs(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, fmt.Errorf("count fds of %d: %w", pid, err)
	}
	return len(ents), nil
}

// settledFDs waits up to timeout for the fd count of pid to stop changing for half a second, and
// returns it.
func settledFDs(pid int, timeout time.Duration) (int, error) {
	last, err := openFDs(pid)
	if err != nil {
		return 0, err
	}
	stable := time.Now()
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		n, err := openFDs(pid)
		if err != nil {
			return 0, err
		}
		if n != last {
			last, stable = n, time.Now()
		} else if time.Since(stable) >= 500*time.Millisecond {
			break
		}
	}
	return last, nil
}

// tree samples the server's whole process tree.
func tree(pid int) (procstat.Tree, error) {
	t, _, err := procstat.SampleTree(pid, false)
	return t, err
}

// cpuShare is the server tree's CPU over d, as a share of one core.
func cpuShare(pid int, d time.Duration) (float64, error) {
	before, err := tree(pid)
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	after, err := tree(pid)
	if err != nil {
		return 0, err
	}
	return float64(after.CPU()-before.CPU()) / float64(after.Time.Sub(before.Time)), nil
}

// statsOf asks a server for its counters.
func statsOf(srv *child.Server) (server.Stats, error) { return srv.RequestStats(5 * time.Second) }

// mib formats bytes as MiB.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
