package syscount

import (
	"os"
	"strings"
	"testing"
)

// TestParseStraceCapturedSummary reads a summary strace 6.1 wrote on this project's machine (strace
// -f -c -q -o FILE -- sh -c ...): rows with and without an errors column, and a total row.
func TestParseStraceCapturedSummary(t *testing.T) {
	f, err := os.Open("testdata/strace-c-sh.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts, err := ParseStrace(f)
	if err != nil {
		t.Fatalf("ParseStrace: %v", err)
	}
	for name, want := range map[string]uint64{"wait4": 8, "openat": 128, "mmap": 95, "access": 5, "clock_nanosleep": 1, "getpid": 1} {
		if counts.Calls[name] != want {
			t.Errorf("%s: %d calls, want %d", name, counts.Calls[name], want)
		}
	}
	if _, ok := counts.Calls["total"]; ok {
		t.Error("the total row was counted as a syscall")
	}
	if len(counts.Calls) != 34 || counts.Total != 583 {
		t.Errorf("%d syscalls, %d calls; want 34 and the total row's 583", len(counts.Calls), counts.Total)
	}
}

// TestParseStraceSumsPersonalities: a second table (32-bit calls of the same processes) adds to the
// first.
func TestParseStraceSumsPersonalities(t *testing.T) {
	const summary = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           3       200        10 read
 40.00    0.000400           2       200           write
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           2       400        10 total
System call usage summary for 32 bit mode:
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010           1        10           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010           1        10           total
`
	counts, err := ParseStrace(strings.NewReader(summary))
	if err != nil {
		t.Fatalf("ParseStrace: %v", err)
	}
	if counts.Calls["read"] != 210 || counts.Calls["write"] != 200 || len(counts.Calls) != 2 || counts.Total != 410 {
		t.Errorf("counts %+v, want read 210, write 200, total 410", counts)
	}
}

func TestParseStraceRejects(t *testing.T) {
	for name, text := range map[string]string{
		"empty":      "",
		"no table":   "strace: exec: No such file or directory\n",
		"other cols": "% time     seconds  usecs/call     calls    syscall\n",
		"bad calls":  "% time     seconds  usecs/call     calls    errors syscall\n 1.00 0.1 2 many 3 read\n",
		"short row":  "% time     seconds  usecs/call     calls    errors syscall\n 1.00 read\n",
	} {
		if counts, err := ParseStrace(strings.NewReader(text)); err == nil {
			t.Errorf("%s: no error, counts %+v", name, counts)
		}
	}
}
