package faults

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "echobench/models/all"
)

// TestFastScenarios runs the fast scenarios (half-close, a reset storm on 200 connections,
// exposure, bad input) at the Quick scale against every row, with the real binaries, as `make
// faults` does: every cell must hold or be an expected limitation.
func TestFastScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and starts every model")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./cmd/echoserver", "./cmd/echobench", "./cmd/echocompare", "./cmd/echosyscalls", "./cmd/echofaults", "./cmd/echolesson")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the binaries: %v\n%s", err, out)
	}
	var fast []Scenario
	for _, s := range Scenarios() {
		if s.Fast {
			fast = append(fast, s)
		}
	}
	if len(fast) != 4 {
		t.Fatalf("%d fast scenarios, want the issue's four (half-close, reset storm, bad input, exposure)", len(fast))
	}
	cells := Run(context.Background(), Options{Rows: Rows(), Scenarios: fast, Scale: Quick, Env: EnvOptions{BinDir: bin}, Progress: testWriter{t}})
	if want := len(Rows())*3 + 1; len(cells) != want {
		t.Errorf("%d cells, want %d", len(cells), want)
	}
	for _, c := range cells {
		if c.Verdict == Breaks {
			t.Errorf("%s / %s breaks: %s; %s", c.Row, c.Scenario, c.Figure, c.Detail)
		}
	}
	var md strings.Builder
	if err := WriteMarkdown(&md, cells, fast, "test"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| epoll |") || !strings.Contains(md.String(), "## 4. bad-input") {
		t.Errorf("the report lacks its matrix or a section:\n%s", md.String())
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
