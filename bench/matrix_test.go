package bench

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestMatrixShape checks each level's cells without running a load: the sweeps the issue asks
// for, unique names, aliases and knee brackets that point at an earlier cell of the same load,
// and Conns that agree with the -c echobench gets.
func TestMatrixShape(t *testing.T) {
	lim := Limits{NoFile: 20000}
	want := map[string]map[string][]float64{
		LevelQuick: {
			SweepConns: {100, 1000}, SweepSize: {64, 16384}, SweepPipeline: {1, 16}, SweepReconnect: {100},
			SweepIdle: {1, 1000}, SweepRate: {30000, 150000}, SweepKnee: {10000}, SweepUDP: {100},
		},
		LevelDefault: {
			SweepConns: {1, 10, 100, 1000, 10000}, SweepSize: {64, 1024, 16384, 65536}, SweepPipeline: {1, 16},
			SweepReconnect: {100}, SweepIdle: {1, 1000, 10000}, SweepRate: {20000, 60000, 100000, 150000},
			SweepKnee: {1000, 10000}, SweepUDP: {100},
		},
		LevelFull: {
			SweepConns: {1, 10, 100, 1000, 10000, 19900}, SweepSize: {64, 1024, 16384, 65536}, SweepPipeline: {1, 16},
			SweepReconnect: {100}, SweepIdle: {1, 1000, 10000},
			SweepRate: {10000, 25000, 50000, 75000, 100000, 125000, 150000, 200000}, SweepKnee: {1000, 10000},
			SweepUDP: {100},
		},
	}
	for level, sweeps := range want {
		t.Run(level, func(t *testing.T) {
			cells, err := Matrix(level, lim)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]float64{}
			seen := map[string]int{}
			for i, c := range cells {
				if _, dup := seen[c.Name]; dup {
					t.Errorf("cell %s twice", c.Name)
				}
				seen[c.Name] = i
				got[c.Sweep] = append(got[c.Sweep], c.X)
				for _, ref := range []string{c.Same, c.Bracket} {
					if j, ok := seen[ref]; ref != "" && (!ok || j >= i) {
						t.Errorf("%s refers to %q, which is not an earlier cell", c.Name, ref)
					}
				}
				if c.Same != "" && !slices.Equal(cells[seen[c.Same]].Args, c.Args) {
					t.Errorf("%s stands for %s but its load differs: %q vs %q", c.Name, c.Same, c.Args, cells[seen[c.Same]].Args)
				}
				if n := flagValue(c.Args, "-c"); n != strconv.Itoa(c.Conns) {
					t.Errorf("%s: Conns %d but -c %s", c.Name, c.Conns, n)
				}
				if flagValue(c.Args, "-warmup") == "" || flagValue(c.Args, "-d") == "" || c.Duration <= 0 {
					t.Errorf("%s has no window: %q", c.Name, c.Args)
				}
				if c.Reconnect != (c.Sweep == SweepReconnect) {
					t.Errorf("%s: Reconnect %v", c.Name, c.Reconnect)
				}
				if (c.Sweep == SweepUDP) != slices.Contains(c.Args, "-udp") {
					t.Errorf("%s (sweep %s) args %q", c.Name, c.Sweep, c.Args)
				}
				if c.Sweep == SweepKnee && (c.Adaptive || c.Timeout == 0 || flagValue(c.Args, "-knee") == "") {
					t.Errorf("knee cell %s: adaptive %v, timeout %v, args %q", c.Name, c.Adaptive, c.Timeout, c.Args)
				}
			}
			for sweep, xs := range sweeps {
				if !slices.Equal(got[sweep], xs) {
					t.Errorf("sweep %s: %v, want %v", sweep, got[sweep], xs)
				}
			}
			if len(got) != len(sweeps) {
				t.Errorf("sweeps %v, want %v", got, sweeps)
			}
			head := cells[seen[Headline]]
			if level != LevelQuick && !head.Adaptive {
				t.Errorf("the headline cell is not adaptive")
			}
		})
	}
	if _, err := Matrix("huge", lim); err == nil {
		t.Error("an unknown level was accepted")
	}
}

// TestMatrixMaxConnsSaysWhy checks that the full level's largest connection count is the fd
// limit's, and that the cell says so, with the limit.
func TestMatrixMaxConnsSaysWhy(t *testing.T) {
	cells, err := Matrix(LevelFull, Limits{NoFile: 20000})
	if err != nil {
		t.Fatal(err)
	}
	var top Cell
	for _, c := range cells {
		if c.Sweep == SweepConns {
			top = c
		}
	}
	if top.Conns != 19900 || !strings.Contains(top.Note, "20000") || !strings.Contains(top.Note, "RLIMIT_NOFILE") {
		t.Errorf("largest connections cell %s: conns %d, note %q", top.Name, top.Conns, top.Note)
	}
	if got := (Limits{NoFile: 1024}).MaxConns(); got != 900 {
		t.Errorf("MaxConns at 1024 fds = %d, want 900", got)
	}
}

func flagValue(args []string, name string) string {
	v := ""
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			v = args[i+1] // the last one wins, as in echobench
		}
	}
	return v
}
