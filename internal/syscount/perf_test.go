package syscount

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestParsePerfCapturedOutput reads what perf 6.1 wrote on this project's machine for the
// process model under 20 connections and 20,025 echoes (perf stat -x, -o FILE -e
// raw_syscalls:sys_enter,syscalls:sys_enter_read,... -- echoserver -model process): the
// comment line, and one line per event of countedCalls.
func TestParsePerfCapturedOutput(t *testing.T) {
	f, err := os.Open("testdata/perf-stat-process.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts, err := ParsePerf(f)
	if err != nil {
		t.Fatalf("ParsePerf: %v", err)
	}
	// The workers are forked and exec'd by the server: their execve, reads and sends are in.
	for name, want := range map[string]uint64{"read": 20294, "sendto": 20025, "futex": 36355, "execve": 20, "clone3": 128, "epoll_pwait2": 0} {
		if got, ok := counts.Calls[name]; !ok || got != want {
			t.Errorf("%s: %d calls (listed %v), want %d", name, got, ok, want)
		}
	}
	if len(counts.Calls) != len(countedCalls) || counts.Total != 99779 {
		t.Errorf("%d calls named, total %d; want %d and 99779", len(counts.Calls), counts.Total, len(countedCalls))
	}
}

func TestParsePerfNotSupported(t *testing.T) {
	const out = `# started on Tue Dec  1 19:25:23 2026

500,,raw_syscalls:sys_enter,1000,100.00,,
200,,syscalls:sys_enter_read,1000,100.00,,
<not supported>,,syscalls:sys_enter_epoll_pwait2,0,100.00,,
`
	counts, err := ParsePerf(strings.NewReader(out))
	if err != nil {
		t.Fatalf("ParsePerf: %v", err)
	}
	if _, ok := counts.Calls["epoll_pwait2"]; ok || counts.Calls["read"] != 200 || counts.Total != 500 {
		t.Errorf("counts %+v, want read 200 of 500 and no epoll_pwait2", counts)
	}
}

func TestParsePerfRejects(t *testing.T) {
	const total = "500,,raw_syscalls:sys_enter,1000,100.00,,\n"
	for name, text := range map[string]string{
		"empty":       "",
		"header only": "# started on Tue Dec  1 19:26:21 2026\n\n",
		"no total":    "200,,syscalls:sys_enter_read,1000,100.00,,\n",
		"not counted": "<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n",
		"scaled":      total + "200,,syscalls:sys_enter_read,1000,50.00,,\n",
		"bad count":   total + "many,,syscalls:sys_enter_read,1000,100.00,,\n",
		"short line":  total + "200,,syscalls:sys_enter_read\n",
		"other event": total + "200,,cycles,1000,100.00,,\n",
		"duplicate":   total + "200,,syscalls:sys_enter_read,1000,100.00,,\n200,,syscalls:sys_enter_read,1000,100.00,,\n",
		"over total":  total + "400,,syscalls:sys_enter_read,1000,100.00,,\n400,,syscalls:sys_enter_write,1000,100.00,,\n",
	} {
		if counts, err := ParsePerf(strings.NewReader(text)); err == nil {
			t.Errorf("%s: no error, counts %+v", name, counts)
		}
	}
}

func TestPerfCommand(t *testing.T) {
	p := perf{path: "/usr/bin/perf", named: []string{"read", "sendto"}}
	got := p.command("/tmp/out", []string{"bin/echoserver", "-model", "select"}).Args
	want := []string{"/usr/bin/perf", "stat", "-x,", "-o", "/tmp/out", "-e",
		"raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_sendto", "--", "bin/echoserver", "-model", "select"}
	if !slices.Equal(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
}
