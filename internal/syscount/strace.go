package syscount

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// strace is the fallback tracer, `strace -f -c`. It names every call, but it stops the server at
// each one, so a loop that polls (models/nonblocking, select) finds more ready per pass than it
// would untraced, and the wasted reads and waits per message come out too low.
type strace struct{ path, version string }

func (s strace) Name() string    { return "strace" }
func (s strace) Version() string { return s.version }
func (s strace) Named() []string { return nil }

// command: -f follows every thread and child; -q drops the attach and detach lines; -o sends the
// summary to a file, so the server's stdout (its address and stats lines) stays its own.
func (s strace) command(out string, argv []string) *exec.Cmd {
	return exec.Command(s.path, append([]string{"-f", "-c", "-q", "-o", out, "--"}, argv...)...)
}

func (s strace) parse(r io.Reader) (Counts, error) { return ParseStrace(r) }

// errNoStrace is returned by findStrace.
var errNoStrace = errors.New("strace is not installed; `make syscalls SYSCALLS_TRACER=strace` installs it with apt-get, or install it yourself")

func findStrace() (Tracer, error) {
	path, err := exec.LookPath("strace")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoStrace, err)
	}
	out, err := exec.Command(path, "-V").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -V: %w", path, err)
	}
	version, _, _ := strings.Cut(string(out), "\n")
	return strace{path: path, version: version}, nil
}

// header is the column header of the strace -c table this parser reads. strace prints one
// table per syscall personality (a second one, headed "System call usage summary for 32 bit
// mode:", when a 64-bit process also makes 32-bit calls); each starts with this header.
var header = []string{"%", "time", "seconds", "usecs/call", "calls", "errors", "syscall"}

// ParseStrace reads the summary strace -c writes and returns the calls per syscall, summed over
// its tables. The total rows are left out; the total is the sum of the rest.
//
// A row is "% time, seconds, usecs/call, calls, errors, syscall", right-aligned numbers; the
// errors column is blank when a call never failed, so a row has five or six fields and the
// calls are always the fourth. The total row has no usecs/call and is recognised by its name.
func ParseStrace(r io.Reader) (Counts, error) {
	counts := Counts{Calls: Calls{}}
	tables := 0
	inTable := false
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && fields[0] == "%":
			if strings.Join(fields, " ") != strings.Join(header, " ") {
				return Counts{}, fmt.Errorf("strace -c line %d: header %q, want %q (strace options that change the columns are not supported)", line, sc.Text(), strings.Join(header, " "))
			}
			tables++
			inTable = true
			continue
		case !inTable || len(fields) == 0 || strings.HasPrefix(fields[0], "---"):
			continue
		case fields[len(fields)-1] == "total":
			inTable = false
			continue
		}
		if len(fields) != 5 && len(fields) != 6 {
			return Counts{}, fmt.Errorf("strace -c line %d: %q is not a syscall row", line, sc.Text())
		}
		n, err := strconv.ParseUint(fields[3], 10, 64)
		if err != nil {
			return Counts{}, fmt.Errorf("strace -c line %d: calls %q: %w", line, fields[3], err)
		}
		counts.Calls[fields[len(fields)-1]] += n
		counts.Total += n
	}
	if err := sc.Err(); err != nil {
		return Counts{}, fmt.Errorf("read strace -c summary: %w", err)
	}
	if tables == 0 {
		return Counts{}, fmt.Errorf("no strace -c table found (did the traced server start?)")
	}
	return counts, nil
}
