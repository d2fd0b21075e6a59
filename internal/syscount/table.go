package syscount

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Threshold is the smallest calls-per-message figure that gets a column of its own: a syscall
// below it in every row is summed into "other" (start-up, signals, memory management).
const Threshold = 0.01

// callOrder puts the calls that make up an echo first, in data-flow order: wait, accept, read,
// write, then the costs of threads and processes. Calls not listed follow in name order.
var callOrder = []string{
	"epoll_wait", "epoll_pwait", "epoll_ctl", "select", "pselect6", "poll", "ppoll", "io_uring_enter",
	"accept4", "accept", "read", "recvfrom", "recvmsg", "readv", "write", "sendto", "sendmsg", "writev",
	"close", "shutdown", "futex", "nanosleep", "sched_yield", "clone", "clone3", "wait4",
}

// Row is one server configuration's figures.
type Row struct {
	Name    string // "epoll", "prefork/128"
	Skipped string // why there are no figures (model unavailable here, a failed run); "" if there are
	Note    string // a caveat on the figures, shown beside them

	// From the traced run: every syscall of the server's life, all threads and processes, and the
	// messages it echoed in that life (its own final stats line).
	Counts
	Echoed uint64

	// From the untraced run (a tracer costs the server time at every call, strace far more than
	// perf, so these come from a run of their own): context switches over the server's life and
	// the messages it echoed in it; threads and processes at their peak; the server's CPU over
	// the measured window and the messages of the window.
	CtxVoluntary, CtxInvoluntary uint64
	UntracedEchoed               uint64
	Threads, Processes           int
	WindowCPUSeconds             float64
	WindowMessages               uint64
}

func (r *Row) perMessage(calls uint64) float64 { return float64(calls) / float64(r.Echoed) }

func (r *Row) ctxPerMessage(n uint64) float64 { return float64(n) / float64(r.UntracedEchoed) }

// cpuMicros is the server's CPU per message of the measured window, in µs.
func (r *Row) cpuMicros() float64 { return r.WindowCPUSeconds * 1e6 / float64(r.WindowMessages) }

func (r *Row) measured() bool {
	return r.Skipped == "" && r.Echoed > 0 && r.UntracedEchoed > 0 && r.WindowMessages > 0
}

// Columns returns the syscalls that get a column: those at Threshold or more per message in at
// least one row.
func Columns(rows []Row) []string {
	seen := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		if !r.measured() {
			continue
		}
		for name, n := range r.Calls {
			if r.perMessage(n) >= Threshold {
				seen[name] = true
			}
		}
	}
	var cols []string
	for _, name := range callOrder {
		if seen[name] {
			cols = append(cols, name)
			delete(seen, name)
		}
	}
	rest := make([]string, 0, len(seen))
	for name := range seen {
		rest = append(rest, name)
	}
	slices.Sort(rest)
	return append(cols, rest...)
}

// cells are a measured row's figures, in the order of the columns: the calls per message of
// each column, other, total, then voluntary and involuntary context switches per message,
// threads, processes and CPU µs per message; format writes the per-message figures.
func (r *Row) cells(cols []string, format func(float64) string) []string {
	var out []string
	var inColumns uint64
	for _, name := range cols {
		n := r.Calls[name]
		inColumns += n
		out = append(out, format(r.perMessage(n)))
	}
	out = append(out,
		format(r.perMessage(r.Total-inColumns)),
		format(r.perMessage(r.Total)),
		format(r.ctxPerMessage(r.CtxVoluntary)),
		format(r.ctxPerMessage(r.CtxInvoluntary)),
		strconv.Itoa(r.Threads),
		strconv.Itoa(r.Processes),
		strconv.FormatFloat(r.cpuMicros(), 'f', 2, 64),
	)
	return out
}

// perMessageText is a per-message figure for the table: three decimals, "<0.001" for a call that
// happened but too seldom to show, "0" for one that never happened.
func perMessageText(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 0.0005:
		return "<0.001"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// perMessageCSV is a per-message figure for the CSV: four significant digits, for whoever
// computes with it.
func perMessageCSV(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// tailColumns follow the syscall columns in both outputs.
var tailColumns = []string{"other", "total", "ctx_voluntary", "ctx_involuntary", "threads", "processes", "cpu_us"}

// WriteCSV writes one line per row: the row's name, why it was skipped (empty if measured), the
// messages the traced server echoed, the per-message figures of the syscall and tail columns
// (empty for a skipped row), and the note.
func WriteCSV(w io.Writer, rows []Row) error {
	cols := Columns(rows)
	cw := csv.NewWriter(w)
	head := append([]string{"model", "skipped", "echoed"}, cols...)
	head = append(head, tailColumns...)
	cw.Write(append(head, "note"))
	for i := range rows {
		r := &rows[i]
		line := []string{r.Name, r.Skipped, ""}
		if r.measured() {
			line[2] = strconv.FormatUint(r.Echoed, 10)
			line = append(line, r.cells(cols, perMessageCSV)...)
		} else {
			line = append(line, make([]string, len(cols)+len(tailColumns))...)
		}
		cw.Write(append(line, r.Note))
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write syscalls csv: %w", err)
	}
	return nil
}

// Conditions are what a reader needs to know to trust or repeat the table.
type Conditions struct {
	Command   string // the command that produced it
	Workload  string // connections, size, pattern, echoes
	Pinning   string // where the server and the load ran
	Kernel    string
	GoVersion string
	Commit    string
	CPU       string // model and count

	Tracer        string   // "perf" or "strace", as Tracer.Name says
	TracerVersion string   // its version line
	Named         []string // the calls it counts by name; nil if every call
}

// WriteMarkdown writes the table with its conditions and how to read it.
func WriteMarkdown(w io.Writer, c Conditions, rows []Row) error {
	cols := Columns(rows)
	var b strings.Builder
	fmt.Fprintf(&b, "# Syscalls per echoed message\n\n")
	fmt.Fprintf(&b, "- Command: `%s`\n", c.Command)
	fmt.Fprintf(&b, "- Workload: %s\n", c.Workload)
	fmt.Fprintf(&b, "- Pinning: %s\n", c.Pinning)
	fmt.Fprintf(&b, "- Kernel %s, %s, commit %s, %s\n", c.Kernel, c.GoVersion, c.Commit, c.CPU)
	b.WriteString(tracerText(c))
	b.WriteString(`A syscall gets a column when it reaches ` + strconv.FormatFloat(Threshold, 'f', -1, 64) + ` per message in some row. The columns after
"total" come from an untraced run, so that no tracer's cost is in it: context switches (wait4's, over
the server's life, exited threads and reaped children included) per message it echoed in that
life; peak threads and processes; and the server's CPU over the measured window per message of
the window.

`)
	head := append([]string{"model"}, cols...)
	head = append(head, "other", "total", "ctx vol", "ctx invol", "threads", "procs", "CPU µs", "note")
	fmt.Fprintf(&b, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(&b, "|%s\n", strings.Repeat(" --- |", len(head)))
	for i := range rows {
		r := &rows[i]
		line := []string{r.Name}
		if r.measured() {
			line = append(line, r.cells(cols, perMessageText)...)
			line = append(line, r.Note)
		} else {
			for range len(cols) + len(tailColumns) {
				line = append(line, "")
			}
			line = append(line, strings.TrimSpace("not measured: "+r.Skipped+" "+r.Note))
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(line, " | "))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write syscalls table: %w", err)
	}
	return nil
}

// tracerText is the tracer's line of the conditions and the paragraph that says what the syscall
// columns count.
func tracerText(c Conditions) string {
	const life = `every call of the server's life (start-up, warmup and shutdown included, every thread and
every child process) divided by the messages the server itself says it echoed in that life (its
final stats line: bytes written / message size).`
	if c.Tracer == "strace" {
		return "- Tracer: " + c.TracerVersion + ", `strace -f -c` (`-tracer strace`)\n\n" +
			"Each server runs twice, on its own. The syscall columns come from a run under `strace -f -c`:\n" + life + `
strace stops the server at every call, so a model that polls (nonblocking, select) finds more
data ready per pass than it would untraced: its EAGAIN reads and select calls per message are
under-counted here. The default tracer, perf, does not stop the server. strace names every call;
"other" is the sum of those without a column.
`
	}
	return "- Tracer: " + c.TracerVersion + ", `perf stat` on the tracepoints " + totalEvent + " (the total) and " +
		callEvent + "NAME for " + strings.Join(c.Named, ", ") + "\n\n" +
		"Each server runs twice, on its own. The syscall columns come from a run under `perf stat`:\n" + life + `
perf counts tracepoints in the kernel as each call enters, without stopping the server, so a loop
that polls spins as it does untraced; strace (-tracer strace), which stops the server at every
call, under-counts the polling models' wasted reads and waits. perf names only the calls listed
above, one tracepoint each, and counts every call in the total; "other" is the total minus the
columns, exactly: the named calls without a column and every call not named.
`
}
