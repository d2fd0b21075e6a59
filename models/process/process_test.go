package process

import (
	"os"
	"testing"

	"echobench/internal/reexec"
	"echobench/models/modeltest"
	"echobench/server"
)

// TestMain lets this test binary serve as its own child: the parent re-executes it in its
// reexec role, and reexec.Run runs the child instead of the tests.
//
// Under -race every process waits a second at exit for the race detector's report
// (GORACE atexit_sleep_ms, default 1000); the children inherit GORACE from here, so they leave at
// once and a test that closes a server waits for no second per child.
func TestMain(m *testing.M) {
	reexec.Run()
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

func TestConformancePerConnection(t *testing.T) {
	modeltest.Run(t, "process", modeltest.Options{})
}

func TestConformancePrefork(t *testing.T) {
	modeltest.Run(t, "process", modeltest.Options{Config: server.Config{Pool: 256}})
}
