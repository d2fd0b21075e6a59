package server

import (
	"fmt"
	"os"
)

// ChildEnv names the environment variable through which a model re-executes the current binary
// as one of its helper processes. Its value is the model's name.
const ChildEnv = "ECHOBENCH_CHILD"

// RunChildIfRequested turns the current process into a model's helper process when ChildEnv asks
// for one, and exits with the helper's status; otherwise it returns at once. Every binary that can
// host a model which starts helpers (cmd/echoserver, cmd/echobench, a model's test binary through
// TestMain) calls it first thing in main.
func RunChildIfRequested() {
	name := os.Getenv(ChildEnv)
	if name == "" {
		return
	}
	m, err := Lookup(name)
	if err != nil || m.Child == nil {
		fmt.Fprintf(os.Stderr, "%s=%s: no such child entry point: %v\n", ChildEnv, name, err)
		os.Exit(2)
	}
	os.Exit(m.Child())
}
