package selectmodel_test

import (
	"testing"

	"echobench/models/modeltest"
	_ "echobench/models/selectmodel"
)

// TestHandler checks -work and -block inline on select's one loop, where a handler that blocks
// holds back every other connection.
func TestHandler(t *testing.T) {
	modeltest.CheckHandler(t, "select", modeltest.HandlerOptions{OneLoop: true})
}
