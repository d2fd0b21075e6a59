package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"

	"echobench/internal/affinity"
	"echobench/measure"
	"echobench/report"
)

// Features are the optional flags an echobench binary has. Another build of echobench (an older
// checkout, say) may lack them; the harness asks rather than assumes.
type Features struct {
	Knee bool `json:"knee"` // -knee, -knee-min, -knee-max
	HLog bool `json:"hlog"` // -hlog FILE
}

// ProbeEchobench asks the echobench at path which optional flags it has, from its -h listing.
func ProbeEchobench(path string) (Features, error) {
	var out bytes.Buffer
	cmd := exec.Command(path, "-h")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		return Features{}, fmt.Errorf("%s -h: %w; run `make build` first (or `make bench`, which does)", path, err)
	}
	has := func(flag string) bool { return bytes.Contains(out.Bytes(), []byte("\n  "+flag+" ")) }
	return Features{Knee: has("-knee-min") || has("-knee"), HLog: has("-hlog")}, nil
}

// RunEnv is env.json: where and how the whole run was taken. Each run's own JSON repeats its
// environment; this is the run's plan, written before the first load so that an interrupted run
// has it too.
type RunEnv struct {
	Env       report.Env `json:"env"` // this machine, as each run's report records it
	Level     string     `json:"bench_level"`
	Echobench string     `json:"echobench"`
	Features  Features   `json:"echobench_features"`
	// FDHardLimit is RLIMIT_NOFILE's hard limit, which bounds every server's connections.
	FDHardLimit uint64 `json:"fd_hard_limit"`
	MaxConns    int    `json:"max_conns"` // the most connections one server can hold under it
	// ServerCPUs are where every server runs (models by echobench's default, external rows by
	// the harness), echobench on the others it is given (its -client-cpus default).
	ServerCPUs string    `json:"server_cpus,omitempty"`
	Repeat     int       `json:"repeat"`
	MaxRepeat  int       `json:"max_repeat"`
	Tolerance  float64   `json:"tolerance"`
	BudgetS    float64   `json:"budget_s"`
	TimeoutS   float64   `json:"timeout_s"`
	Rows       []EnvRow  `json:"rows"`
	Cells      []EnvCell `json:"cells"`
}

// EnvRow is a row as env.json lists it.
type EnvRow struct {
	Name       string   `json:"name"`
	Model      string   `json:"model,omitempty"`
	ServerArgs []string `json:"server_args,omitempty"`
	Command    string   `json:"command,omitempty"` // an external row's, with {port}
	Missing    string   `json:"missing,omitempty"`
}

// EnvCell is a cell as env.json lists it.
type EnvCell struct {
	Name     string   `json:"name"`
	Sweep    string   `json:"sweep"`
	X        float64  `json:"x"`
	Args     []string `json:"args"`
	Adaptive bool     `json:"adaptive,omitempty"`
	Same     string   `json:"same_as,omitempty"`
	Note     string   `json:"note,omitempty"`
	TimeoutS float64  `json:"timeout_s"`
}

// WriteEnv writes cfg's RunEnv to path.
func WriteEnv(path string, cfg Config) error {
	e := RunEnv{
		Env: measure.CollectEnv(), Level: cfg.Level, Echobench: cfg.Echobench, Features: cfg.Features,
		FDHardLimit: cfg.Limits.NoFile, MaxConns: cfg.Limits.MaxConns(),
		Repeat: cfg.Repeat, MaxRepeat: cfg.MaxRepeat, Tolerance: cfg.Tolerance,
		BudgetS: cfg.Budget.Seconds(), TimeoutS: cfg.Timeout.Seconds(),
	}
	e.Env.NoFileLimit = cfg.Limits.NoFile
	if cfg.ServerCPUs != nil {
		e.ServerCPUs = affinity.Format(cfg.ServerCPUs)
		e.Env.Pinning = report.Pinning{Enabled: true, ServerCPUs: e.ServerCPUs}
	}
	for _, r := range cfg.Rows {
		e.Rows = append(e.Rows, EnvRow{Name: r.Name, Model: r.Model, ServerArgs: append(cfg.Server.Args(), r.Server.Args()...),
			Command: r.Command, Missing: r.Missing})
	}
	for _, c := range cfg.Cells {
		e.Cells = append(e.Cells, EnvCell{Name: c.Name, Sweep: c.Sweep, X: c.X, Args: c.Args, Adaptive: c.Adaptive,
			Same: c.Same, Note: c.Note, TimeoutS: orDefault(c.Timeout, cfg.Timeout).Seconds()})
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("env.json: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// envTimeFormat names a results directory: UTC, sortable, no colons.
const envTimeFormat = "20060102T150405Z"

// ResultsDir is the default results directory for a run started at t.
func ResultsDir(t time.Time) string { return "results/" + t.UTC().Format(envTimeFormat) }
