package syscount

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/child"
	"echobench/report"
	"echobench/server"
)

// Config is the fixed workload and the binaries that run it.
type Config struct {
	EchoServer, EchoBench  string // paths to bin/echoserver, bin/echobench
	Tracer                 Tracer // what counts the syscalls of the traced run
	ServerCPUs, ClientCPUs string // kernel CPU lists, as echobench takes them
	Conns, Size, Messages  int    // connections, message size, echoes in the measured window
	Warmup                 time.Duration
	Limit                  time.Duration // the longest a measured window may run, traced or not
	Log                    io.Writer     // progress, and the output of a run that failed
}

// Validate refuses a workload that no run could carry out, before any server starts: every run
// would fail the same way, and the table written after them would replace a good one with rows
// that all say "not measured".
func (c Config) Validate() error {
	switch {
	case c.Conns < 1:
		return fmt.Errorf("-c %d: want at least one connection", c.Conns)
	case c.Size < 1:
		return fmt.Errorf("-size %d: want a message of at least one byte (every echo is counted by size)", c.Size)
	case c.Messages < 1:
		return fmt.Errorf("-messages %d: want at least one echo in the measured window", c.Messages)
	case c.Warmup < 0:
		return fmt.Errorf("-warmup %v: want 0 or more", c.Warmup)
	case c.Limit <= 0:
		return fmt.Errorf("-limit %v: want a positive bound on the measured window", c.Limit)
	}
	return nil
}

// Args are the echobench load flags of the workload: closed-loop ping-pong, ended by the echo
// count, with the duration only as a bound.
func (c Config) Args() []string {
	return []string{
		"-c", strconv.Itoa(c.Conns), "-size", strconv.Itoa(c.Size), "-pipeline", "1",
		"-messages", strconv.Itoa(c.Messages), "-d", c.Limit.String(), "-warmup", c.Warmup.String(),
		"-server-cpus", c.ServerCPUs, "-client-cpus", c.ClientCPUs,
	}
}

// Target is one server configuration: a model and its server flags (a pool size, say).
type Target struct {
	Name   string
	Model  string
	Server server.Config
}

func (t Target) serverArgs() []string {
	return append([]string{"-model", t.Model}, t.Server.Args()...)
}

// stopTimeout bounds the wait for a server (and its tracer) to exit after SIGTERM. perf writes
// its counts only after the server has exited, and then tears down its ~50 tracepoints, which
// takes a second or two.
const stopTimeout = 30 * time.Second

// addrTimeout bounds the wait for a server's first line, its address; the tracer's start-up is
// in it.
const addrTimeout = 30 * time.Second

// Measure runs t twice, traced and untraced, and returns its row. A model that cannot run here, or
// a run that fails, gives a row that says why.
func Measure(ctx context.Context, c Config, t Target) Row {
	row := Row{Name: t.Name}
	m, err := server.Lookup(t.Model)
	if err == nil {
		err = m.CheckAvailable()
	}
	if err != nil {
		row.Skipped = err.Error()
		return row
	}
	dir, err := os.MkdirTemp("", "echosyscalls-")
	if err != nil {
		row.Skipped = err.Error()
		return row
	}
	defer os.RemoveAll(dir)
	if err := c.traced(ctx, t, dir, &row); err != nil {
		row.Skipped = fmt.Sprintf("traced run: %v", err)
		return row
	}
	if err := c.untraced(ctx, t, dir, &row); err != nil {
		row.Skipped = fmt.Sprintf("untraced run: %v", err)
	}
	return row
}

// traced starts the server under the tracer, pins it, loads it with echobench -addr, stops it
// with SIGTERM and reads the counts the tracer writes when the server has exited. It reads the
// child protocol's lines with internal/child's own parsers but starts the process itself, because
// child.Start runs the server binary directly and cannot put a tracer in front of it.
func (c Config) traced(ctx context.Context, t Target, dir string, row *Row) error {
	tracer := c.Tracer.Name()
	countsFile := filepath.Join(dir, tracer+".out")
	serverCPUs, err := affinity.ParseList(c.ServerCPUs)
	if err != nil {
		return fmt.Errorf("server CPUs: %w", err)
	}
	argv := append([]string{c.EchoServer}, child.Options{Model: t.Model, Config: t.Server}.CommandArgs()...)
	cmd := c.Tracer.command(countsFile, argv)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%s stdout: %w", tracer, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	stats := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		last := ""
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			} else if _, ok := child.ParseStats(sc.Text()); ok {
				last = sc.Text()
			}
		}
		stats <- last
		exited <- cmd.Wait()
	}()
	// The server is the tracer's one child, and it is the server that is signalled: strace
	// blocks SIGTERM while it runs a command it started (its -I default with -o), and perf
	// dies of it without writing its counts, leaving the server running. Either exits when the
	// server has.
	serverPID := 0
	stopped := false
	defer func() {
		if stopped {
			return
		}
		// A failed run: the server is asked to stop as usual, so that a model's helper
		// processes go with it, and killed, with its tracer, only if it does not.
		if serverPID > 0 {
			syscall.Kill(serverPID, syscall.SIGTERM)
			select {
			case err := <-exited:
				exited <- err
			case <-time.After(stopTimeout):
				syscall.Kill(serverPID, syscall.SIGKILL)
				cmd.Process.Kill()
			}
		} else {
			cmd.Process.Kill()
		}
		<-exited
	}()
	var addr string
	select {
	case line := <-lines:
		if addr, err = child.ParseAddr(line); err != nil {
			return err
		}
	case <-time.After(addrTimeout):
		return fmt.Errorf("no address line from the server within %v: %s", addrTimeout, stderr.String())
	case <-stats:
		return fmt.Errorf("the server exited before printing its address: %s", strings.TrimSpace(stderr.String()))
	}
	if serverPID, err = onlyChild(cmd.Process.Pid); err != nil {
		return err
	}
	// Pinned now rather than from the start: a thread created later inherits its creator's
	// mask, so what runs during the load (and every process it forks) is on serverCPUs.
	for _, pid := range []int{cmd.Process.Pid, serverPID} {
		if _, err := affinity.PinProcess(pid, serverCPUs); err != nil {
			return fmt.Errorf("pin pid %d: %w", pid, err)
		}
	}
	if err := c.echobench(ctx, append([]string{"-addr", addr}, c.Args()...)); err != nil {
		return err
	}
	if err := syscall.Kill(serverPID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop server pid %d: %w", serverPID, err)
	}
	var line string
	select {
	case line = <-stats:
	case <-time.After(stopTimeout):
		return fmt.Errorf("the server did not exit within %v of SIGTERM", stopTimeout)
	}
	if err := <-exited; err != nil {
		stopped = true
		return fmt.Errorf("%s: %w: %s", tracer, err, strings.TrimSpace(stderr.String()))
	}
	stopped = true
	st, ok := child.ParseStats(line)
	if !ok {
		return fmt.Errorf("the server printed no final stats line")
	}
	row.Echoed = st.BytesOut / uint64(c.Size)
	f, err := os.Open(countsFile)
	if err != nil {
		return fmt.Errorf("%s counts: %w", tracer, err)
	}
	defer f.Close()
	if row.Counts, err = c.Tracer.parse(f); err != nil {
		return fmt.Errorf("%s: %w", countsFile, err)
	}
	return nil
}

// untraced runs echobench -model, which starts, pins, accounts and stops the server itself, and
// reads its JSON report.
func (c Config) untraced(ctx context.Context, t Target, dir string, row *Row) error {
	out := filepath.Join(dir, "untraced.json")
	args := append(append([]string{"-server-bin", c.EchoServer, "-o", out}, t.serverArgs()...), c.Args()...)
	if err := c.echobench(ctx, args); err != nil {
		return err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("echobench report: %w", err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("echobench report %s: %w", out, err)
	}
	if len(rep.Runs) != 1 || rep.Runs[0].Server == nil || rep.Runs[0].ServerCounts == nil {
		return fmt.Errorf("echobench report %s has no server accounting", out)
	}
	run := rep.Runs[0]
	srv := run.Server
	row.CtxVoluntary, row.CtxInvoluntary = srv.CtxVoluntary, srv.CtxInvolunt
	row.Threads, row.Processes = srv.PeakThreads, srv.PeakProcesses
	row.WindowCPUSeconds, row.WindowMessages = srv.WindowCPUS, run.Messages
	row.UntracedEchoed = run.ServerCounts.BytesOut / uint64(c.Size)
	if srv.CtxSource != "wait4" {
		row.Note = strings.TrimSpace(row.Note + " context switches: " + srv.CtxSource + ", not the server's whole life.")
	}
	if run.Messages < uint64(c.Messages) {
		row.Note = strings.TrimSpace(fmt.Sprintf("%s the %v limit ended the untraced window at %d echoes.", row.Note, c.Limit, run.Messages))
	}
	return nil
}

// echobench runs bin/echobench with args; its output is shown only when it fails.
func (c Config) echobench(ctx context.Context, args []string) error {
	cmd := exec.CommandContext(ctx, c.EchoBench, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if c.Log != nil {
			fmt.Fprintf(c.Log, "%s %s\n%s", c.EchoBench, strings.Join(args, " "), out.String())
		}
		return fmt.Errorf("echobench: %w", err)
	}
	return nil
}

// onlyChild returns the pid of the one child of process pid.
func onlyChild(pid int) (int, error) {
	path := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("find the traced server: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 1 {
		return 0, fmt.Errorf("find the traced server: %s lists %d children, want 1", path, len(fields))
	}
	child, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0, fmt.Errorf("find the traced server: %s: %w", path, err)
	}
	return child, nil
}
