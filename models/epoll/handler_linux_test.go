package epoll_test

import (
	"testing"

	_ "echobench/models/epoll"
	"echobench/models/modeltest"
	"echobench/server"
)

// TestHandler checks -work and -block inline on the event loop; with one loop, a handler that
// blocks holds back every other connection.
func TestHandler(t *testing.T) {
	modeltest.CheckHandler(t, "epoll", modeltest.HandlerOptions{Config: server.Config{Loops: 1}, OneLoop: true})
}
