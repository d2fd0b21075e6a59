package syscount

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
)

func sampleRows() []Row {
	return []Row{
		{
			Name: "epoll", Echoed: 1000,
			Counts:       Counts{Calls: Calls{"epoll_wait": 500, "read": 1000, "write": 1000, "mmap": 5, "futex": 20}, Total: 2525},
			CtxVoluntary: 300, CtxInvoluntary: 10, UntracedEchoed: 2000, Threads: 4, Processes: 1,
			WindowCPUSeconds: 0.01, WindowMessages: 1000,
		},
		{
			Name: "select", Echoed: 2000,
			Counts:       Counts{Calls: Calls{"pselect6": 2000, "read": 2000, "write": 2000, "mmap": 5, "rt_sigaction": 100}, Total: 6105},
			CtxVoluntary: 20, CtxInvoluntary: 20, UntracedEchoed: 4000, Threads: 3, Processes: 1,
			WindowCPUSeconds: 0.03, WindowMessages: 2000,
		},
		{Name: "uring", Skipped: "io_uring is not available"},
	}
}

func TestColumns(t *testing.T) {
	// futex (0.02 in epoll) and rt_sigaction (0.05 in select) reach the threshold in one row
	// each; mmap (0.005, 0.0025) does not, and goes to other.
	want := []string{"epoll_wait", "pselect6", "read", "write", "futex", "rt_sigaction"}
	if got := Columns(sampleRows()); !slices.Equal(got, want) {
		t.Errorf("columns %v, want %v", got, want)
	}
}

func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, sampleRows()); err != nil {
		t.Fatal(err)
	}
	lines, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not read back: %v", err)
	}
	want := [][]string{
		{"model", "skipped", "echoed", "epoll_wait", "pselect6", "read", "write", "futex", "rt_sigaction", "other", "total", "ctx_voluntary", "ctx_involuntary", "threads", "processes", "cpu_us", "note"},
		{"epoll", "", "1000", "0.5", "0", "1", "1", "0.02", "0", "0.005", "2.525", "0.15", "0.005", "4", "1", "10.00", ""},
		{"select", "", "2000", "0", "1", "1", "1", "0", "0.05", "0.0025", "3.053", "0.005", "0.005", "3", "1", "15.00", ""},
		{"uring", "io_uring is not available", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ""},
	}
	if !slices.EqualFunc(lines, want, slices.Equal) {
		t.Errorf("CSV\n%v\nwant\n%v", lines, want)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	c := Conditions{Command: "make syscalls", Workload: "100 × 64 B", Kernel: "6.1", GoVersion: "go1.26", Commit: "abc", CPU: "2 × x",
		Tracer: "perf", TracerVersion: "perf version 6.1", Named: []string{"read", "write"}}
	if err := WriteMarkdown(&b, c, sampleRows()); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"`make syscalls`", "commit abc",
		"- Tracer: perf version 6.1, `perf stat` on the tracepoints raw_syscalls:sys_enter (the total) and syscalls:sys_enter_NAME for read, write\n",
		"| model | epoll_wait | pselect6 | read | write | futex | rt_sigaction | other | total |",
		"| epoll | 0.500 | 0 | 1.000 | 1.000 | 0.020 | 0 | 0.005 | 2.525 | 0.150 | 0.005 | 4 | 1 | 10.00 |  |",
		"| uring |" + strings.Repeat("  |", 13) + " not measured: io_uring is not available |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestWriteMarkdownStrace: a table strace made says so, and says what strace does to the
// polling models' counts.
func TestWriteMarkdownStrace(t *testing.T) {
	var b bytes.Buffer
	c := Conditions{Command: "make syscalls SYSCALLS_TRACER=strace", Tracer: "strace", TracerVersion: "strace -- version 6.1"}
	if err := WriteMarkdown(&b, c, sampleRows()); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"- Tracer: strace -- version 6.1, `strace -f -c`", "under-counted"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "perf stat") {
		t.Errorf("a strace table describes perf:\n%s", md)
	}
}
