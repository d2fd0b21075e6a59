package syscount

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// perf is the default tracer, `perf stat` on syscall tracepoints. The kernel counts each call as
// it enters, without stopping the process, so a loop that polls spins as it does untraced and its
// wasted reads and waits are counted as they happen. perf stat follows every thread and every
// forked child by default (its counters are inherited), so a process model's workers are counted
// with their parent.
type perf struct {
	path, version string
	named         []string // the calls of countedCalls this kernel has a tracepoint for
}

// countedCalls are the calls perf counts by name: those the models make per message, and those of
// threads, processes, signals and memory that a model may make often enough to show. Each is a
// tracepoint of its own, and perf sets up and tears down each one: the ~350 of
// syscalls:sys_enter_* take ~30 s to tear down (an RCU grace period per event), so the list is
// fixed. Every other call is counted only in the total, raw_syscalls:sys_enter, and the table's
// "other" is that total minus these, exactly.
var countedCalls = []string{
	"read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg", "sendmmsg",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "select", "pselect6", "poll", "ppoll",
	"io_uring_enter", "accept", "accept4", "close", "shutdown", "setsockopt", "getsockopt",
	"futex", "nanosleep", "clock_nanosleep", "sched_yield", "mmap", "munmap", "madvise",
	"rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "tgkill", "getpid", "fcntl",
	"clone", "clone3", "execve", "wait4", "waitid", "pidfd_open", "pipe2", "openat", "getrusage", "prctl",
}

// totalEvent counts every syscall entry; callEvent is the prefix of one call's tracepoint.
const (
	totalEvent = "raw_syscalls:sys_enter"
	callEvent  = "syscalls:sys_enter_"
)

// traceEventDirs are where tracefs is mounted: its own mount point, then the old one under
// debugfs.
var traceEventDirs = []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"}

func (p perf) Name() string    { return "perf" }
func (p perf) Version() string { return p.version }
func (p perf) Named() []string { return p.named }

func (p perf) events() string {
	events := []string{totalEvent}
	for _, name := range p.named {
		events = append(events, callEvent+name)
	}
	return strings.Join(events, ",")
}

// command: -x, writes CSV; -o sends it to a file, so the server's stdout (its address and stats
// lines) stays its own.
func (p perf) command(out string, argv []string) *exec.Cmd {
	return exec.Command(p.path, append([]string{"stat", "-x,", "-o", out, "-e", p.events(), "--"}, argv...)...)
}

func (p perf) parse(r io.Reader) (Counts, error) { return ParsePerf(r) }

// errNoPerf is returned by findPerf.
var errNoPerf = errors.New("perf is not installed; `make syscalls` installs it with apt-get (linux-perf), or use -tracer strace")

// findPerf finds perf, the tracepoints this kernel has, and checks that perf can count them: a
// user who is not root cannot, unless tracefs is readable and kernel.perf_event_paranoid allows.
func findPerf() (Tracer, error) {
	path, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoPerf, err)
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", path, err)
	}
	version, _, _ := strings.Cut(string(out), "\n")
	p := perf{path: path, version: version}
	if p.named, err = tracepoints(); err != nil {
		return nil, err
	}
	// One run of the real event list on a command that exits at once: the permission and
	// event errors show here, before any server starts, and not as a failed row per model.
	probe := exec.Command(path, "stat", "-x,", "-o", os.DevNull, "-e", p.events(), "--", "true")
	var stderr bytes.Buffer
	probe.Stderr = &stderr
	if err := probe.Run(); err != nil {
		return nil, fmt.Errorf("perf cannot count the syscall tracepoints here (%w: %s); it needs root, or kernel.perf_event_paranoid at -1 and a readable tracefs; or use -tracer strace", err, firstLines(stderr.String(), 4))
	}
	return p, nil
}

// tracepoints returns the calls of countedCalls that have a tracepoint on this kernel, in their
// order; a kernel without one (an older kernel has no epoll_pwait2) counts that call in "other".
func tracepoints() ([]string, error) {
	var firstErr error // the one of the usual mount point, the more telling
	for _, dir := range traceEventDirs {
		if _, err := os.Stat(filepath.Join(dir, "raw_syscalls", "sys_enter")); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		var named []string
		for _, name := range countedCalls {
			if _, err := os.Stat(filepath.Join(dir, "syscalls", "sys_enter_"+name)); err == nil {
				named = append(named, name)
			}
		}
		return named, nil
	}
	return nil, fmt.Errorf("no syscall tracepoints readable (%w): perf needs tracefs at /sys/kernel/tracing and root to read it; or use -tracer strace", firstErr)
}

// firstLines is at most n lines of s, joined by "; ", for an error message.
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// ParsePerf reads what `perf stat -x, -o FILE` writes: a "# started on" comment, a blank line,
// then one line per event, "count,unit,event,run time,% of it counting,metric,metric unit". The
// count is "<not supported>" for an event this kernel cannot count and "<not counted>" for one
// that never ran. raw_syscalls:sys_enter is the total; syscalls:sys_enter_NAME the calls of NAME.
//
// An event not supported is left out, so its calls stay in the total and show in "other". An event
// not counted, or counted only part of the time (perf then scales the count up: an estimate), is
// an error: the counts would not be the server's whole life.
func ParsePerf(r io.Reader) (Counts, error) {
	counts := Counts{Calls: Calls{}}
	sawTotal := false
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) < 5 {
			return Counts{}, fmt.Errorf("perf stat line %d: %q is not a count line (perf options that change the columns are not supported)", line, text)
		}
		count, event, running := fields[0], fields[2], fields[4]
		name, isCall := strings.CutPrefix(event, callEvent)
		if !isCall && event != totalEvent {
			return Counts{}, fmt.Errorf("perf stat line %d: unexpected event %q", line, event)
		}
		switch count {
		case "<not supported>":
			continue
		case "<not counted>":
			return Counts{}, fmt.Errorf("perf stat line %d: %s was not counted (did the traced server start?)", line, event)
		}
		n, err := strconv.ParseUint(count, 10, 64)
		if err != nil {
			return Counts{}, fmt.Errorf("perf stat line %d: count %q: %w", line, count, err)
		}
		if pct, err := strconv.ParseFloat(running, 64); err != nil || pct < 100 {
			return Counts{}, fmt.Errorf("perf stat line %d: %s counted %s%% of the time, want 100 (an estimate, not a count)", line, event, running)
		}
		if !isCall {
			if sawTotal {
				return Counts{}, fmt.Errorf("perf stat line %d: a second %s", line, event)
			}
			counts.Total, sawTotal = n, true
			continue
		}
		if _, dup := counts.Calls[name]; dup {
			return Counts{}, fmt.Errorf("perf stat line %d: a second %s", line, event)
		}
		counts.Calls[name] = n
	}
	if err := sc.Err(); err != nil {
		return Counts{}, fmt.Errorf("read perf stat output: %w", err)
	}
	if !sawTotal {
		return Counts{}, fmt.Errorf("no %s count in the perf stat output (did the traced server start?)", totalEvent)
	}
	var named uint64
	for _, n := range counts.Calls {
		named += n
	}
	if named > counts.Total {
		return Counts{}, fmt.Errorf("perf stat: the named calls add up to %d, more than the %d of %s", named, counts.Total, totalEvent)
	}
	return counts, nil
}
