package measure

import (
	"os"
	"testing"

	"echobench/internal/reexec"
	_ "echobench/models/stdnet"
)

// TestMain lets the test binary be the stdnet echoserver its tests start (package child
// re-executes it in the reexec role).
func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}
