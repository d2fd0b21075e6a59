package uring

import (
	"testing"

	"echobench/models/modeltest"
	"echobench/server"
)

// TestHandler checks -work and -block inline on the event loop; with one loop, a handler that
// blocks holds back every other connection.
func TestHandler(t *testing.T) {
	modeltest.CheckHandler(t, "uring", modeltest.HandlerOptions{Config: server.Config{Loops: 1}, OneLoop: true})
}
