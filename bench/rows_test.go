package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"echobench/report"
	"echobench/server"
)

// TestUnsupportedKnownLimits checks the n/a decisions made before a run, from the models' own
// limits, and that a cell within every limit runs.
func TestUnsupportedKnownLimits(t *testing.T) {
	cfg := Config{Echobench: "bin/echobench", Limits: Limits{NoFile: 20000}, Features: Features{Knee: true}}
	rows := map[string]Row{}
	for _, r := range append(DefaultRows(), Row{Name: CRefName, Command: "x {port}"}) {
		rows[r.Name] = r
	}
	cell := func(conns int) Cell { return Cell{Name: "c", Sweep: SweepConns, Conns: conns} }
	cases := []struct {
		row  string
		cell Cell
		want string // a piece of the reason; "" = runs
	}{
		{"select", cell(1000), ""},
		{"select", cell(10000), "FD_SETSIZE"},
		{"blocking", cell(1000), ""},
		{"blocking", cell(10000), "ceiling of 9000"},
		{"process", cell(1000), ""},
		{"process", cell(10000), "at most 4096"},
		{"blocking/128", cell(100), ""},
		{"blocking/128", cell(1000), "the other 872 would wait in the listen backlog"},
		{"prefork/128", cell(1000), "pool of 128"},
		{"prefork/128", Cell{Name: "reconnect", Sweep: SweepReconnect, Conns: 1000, Reconnect: true}, ""},
		{"epoll", cell(19900), ""},
		{"epoll", cell(20000), "RLIMIT_NOFILE"},
		{CRefName, cell(10000), ""},
	}
	for _, c := range cases {
		got := Unsupported(rows[c.row], c.cell, cfg)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s at %d conns: %q, want %q", c.row, c.cell.Conns, got, c.want)
		}
	}
	// A pool given to every row by the harness's flags is a pool too.
	shared := cfg
	shared.Server = server.Config{Pool: 64}
	if got := Unsupported(rows["blocking"], cell(100), shared); !strings.Contains(got, "pool of 64") {
		t.Errorf("blocking with a shared -pool 64 at 100 conns: %q", got)
	}
	knee := Cell{Name: "knee=1ms", Sweep: SweepKnee, Conns: 1000}
	if got := Unsupported(rows["epoll"], knee, Config{Echobench: "old/echobench"}); !strings.Contains(got, "-knee") {
		t.Errorf("knee cell without -knee: %q", got)
	}
	udp := Cell{Name: "udp", Sweep: SweepUDP, Conns: 100}
	if got := Unsupported(rows["process"], udp, cfg); !strings.Contains(got, "no UDP variant") {
		t.Errorf("process (no UDP variant) at the UDP cell: %q", got)
	}
	if got := Unsupported(rows[CRefName], udp, cfg); !strings.Contains(got, "TCP server") {
		t.Errorf("an external row at the UDP cell: %q", got)
	}
	missing := CRefRow(t.TempDir())
	if got := Unsupported(missing, cell(1), cfg); !strings.Contains(got, "make reference") {
		t.Errorf("C-ref without its binary: %q", got)
	}
}

// TestJudgeFromResults checks the n/a decisions made from a run's report.
func TestJudgeFromResults(t *testing.T) {
	c := Cell{Name: "conns=1000", Sweep: SweepConns, Conns: 1000}
	ok := report.Summary{MsgsPerSec: 1e5, ConnsEstablished: 1000, ConnsEchoed: 1000}
	if why, short, _ := judge(c, ok, nil); why != "" || short != "" {
		t.Errorf("a full run is n/a (%q) or short (%q)", why, short)
	}
	most := ok
	most.ConnsEchoed = 772
	if why, short, partial := judge(c, most, nil); why != "" || partial || !strings.Contains(short, "only 772 of 1000") {
		t.Errorf("most served: n/a %q, short %q, partial %v", why, short, partial)
	}
	few := ok
	few.ConnsEchoed = 48
	if why, _, partial := judge(c, few, nil); !strings.Contains(why, "only 48 of 1000") || !partial {
		t.Errorf("few served: %q, partial %v", why, partial)
	}
	failed := ok
	failed.ConnsEstablished, failed.ConnsFailed = 400, 600
	if why, _, _ := judge(c, failed, nil); !strings.Contains(why, "400 established, 600 failed") {
		t.Errorf("failed connects: %q", why)
	}
	dead := report.Summary{Error: "server exited: signal: killed\nmore"}
	if why, _, _ := judge(c, dead, nil); why != "server exited: signal: killed" {
		t.Errorf("crash: %q", why)
	}
	wrong := ok
	wrong.VerifyFailuresTotal = 3
	if why, _, _ := judge(c, wrong, nil); !strings.Contains(why, "wrong") {
		t.Errorf("wrong echoes: %q", why)
	}
	// Reconnect cells count every connect as established; past saturation a rate cell starves
	// connections by design; a knee of 0 is a result.
	if why, _, _ := judge(Cell{Reconnect: true, Conns: 100}, report.Summary{NewConnsPerSec: 5000, ConnsEstablished: 9000, ConnsEchoed: 100}, nil); why != "" {
		t.Errorf("reconnect: %q", why)
	}
	if why, short, _ := judge(Cell{Sweep: SweepRate, Conns: 1000}, few, nil); why != "" || short != "" {
		t.Errorf("a rate cell past saturation: %q, %q", why, short)
	}
	if why, _, _ := judge(c, report.Summary{}, &report.Knee{}); why != "" {
		t.Errorf("knee of 0: %q", why)
	}
}

func TestParseServer(t *testing.T) {
	row, err := ParseServer("mine=./srv -p {port} -threads 1")
	if err != nil || row.Name != "mine" || row.Command != "./srv -p {port} -threads 1" || !row.External() || row.Args() != nil {
		t.Errorf("ParseServer: %+v, %v", row, err)
	}
	for _, bad := range []string{"mine", "=./srv {port}", "mine=./srv -p 9000", "my/srv=./srv {port}", "mine="} {
		if _, err := ParseServer(bad); err == nil {
			t.Errorf("ParseServer(%q) accepted", bad)
		}
	}
}

// TestProbeEchobench checks that optional flags are found in an echobench's -h listing.
func TestProbeEchobench(t *testing.T) {
	dir := t.TempDir()
	write := func(name, usage string) string {
		p := filepath.Join(dir, name)
		script := "#!/bin/sh\ncat >&2 <<'EOF'\nusage: echobench\n" + usage + "EOF\n"
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f, err := ProbeEchobench(write("new", "  -hlog string\n    \tlog\n  -knee duration\n    \tbound\n  -knee-min int\n"))
	if err != nil || !f.Knee || !f.HLog {
		t.Errorf("new echobench: %+v, %v", f, err)
	}
	f, err = ProbeEchobench(write("old", "  -d duration\n    \twindow\n"))
	if err != nil || f.Knee || f.HLog {
		t.Errorf("old echobench: %+v, %v", f, err)
	}
	if _, err := ProbeEchobench(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing echobench was probed")
	}
}

// TestIdleRSSPerConn checks the idle cells' method: peak RSS less the one-connection cell's,
// over the connections.
func TestIdleRSSPerConn(t *testing.T) {
	cells := []Cell{{Name: "idle=1", Sweep: SweepIdle, X: 1}, {Name: "idle=1000", Sweep: SweepIdle, X: 1000}}
	row := Row{Name: "epoll"}
	results := []*Result{
		{Row: row, Cell: "idle=1", Runs: []report.Summary{{ServerPeakRSSBytes: 8 << 20}}},
		{Row: row, Cell: "idle=1000", Runs: []report.Summary{{ServerPeakRSSBytes: 9 << 20}, {ServerPeakRSSBytes: 10 << 20}}},
	}
	got, ok := IdleRSSPerConn(results, cells, "epoll", "idle=1000")
	if want := float64(2<<20) / 1000; !ok || got != want {
		t.Errorf("IdleRSSPerConn = %v, %v; want %v", got, ok, want)
	}
	if _, ok := IdleRSSPerConn(results, cells, "stdnet", "idle=1000"); ok {
		t.Error("a row without idle runs has an RSS per connection")
	}
}
