package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"echobench/bench"
)

func TestPickRows(t *testing.T) {
	all, err := pickRows("bin", "")
	if err != nil || len(all) != len(bench.DefaultRows())+1 || all[len(all)-1].Name != bench.CRefName {
		t.Fatalf("default rows %v, %v: want the models and C-ref", all, err)
	}
	some, err := pickRows("bin", "epoll, C-ref")
	if err != nil || len(some) != 2 || some[0].Name != "epoll" || some[1].Name != bench.CRefName {
		t.Errorf("-models epoll,C-ref: %v, %v", some, err)
	}
	if _, err := pickRows("bin", "epoll,nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("an unknown row: %v", err)
	}
}

// TestOverrideWindow checks that -warmup and -d reach every cell but the knee searches, whose
// probes keep their own windows.
func TestOverrideWindow(t *testing.T) {
	cells, err := bench.Matrix(bench.LevelQuick, bench.Limits{NoFile: 20000})
	if err != nil {
		t.Fatal(err)
	}
	cells = overrideWindow(cells, 2*time.Second, 5*time.Second)
	for _, c := range cells {
		n := len(c.Args)
		got := c.Args[n-4:]
		changed := slices.Equal(got, []string{"-warmup", "2s", "-d", "5s"})
		if changed == (c.Sweep == bench.SweepKnee) || (changed && c.Duration != 5*time.Second) {
			t.Errorf("%s: args %q, duration %v", c.Name, c.Args, c.Duration)
		}
	}
}
