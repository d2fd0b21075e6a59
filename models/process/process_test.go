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
func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

func TestConformancePerConnection(t *testing.T) {
	modeltest.Run(t, "process", modeltest.Options{})
}

func TestConformancePrefork(t *testing.T) {
	modeltest.Run(t, "process", modeltest.Options{Config: server.Config{Pool: 256}})
}
