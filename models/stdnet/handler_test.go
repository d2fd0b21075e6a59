package stdnet_test

import (
	"testing"

	"echobench/models/modeltest"
	_ "echobench/models/stdnet"
)

// TestHandler checks -work and -block in the connection's goroutine.
func TestHandler(t *testing.T) {
	modeltest.CheckHandler(t, "stdnet", modeltest.HandlerOptions{})
}
