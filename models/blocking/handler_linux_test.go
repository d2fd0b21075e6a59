package blocking_test

import (
	"testing"

	"echobench/models/modeltest"
	"echobench/server"
)

// TestHandler checks -work and -block on a connection's own thread, with a thread per connection
// and with a pool.
func TestHandler(t *testing.T) {
	modeltest.CheckHandler(t, "blocking", modeltest.HandlerOptions{})
	t.Run("Pool", func(t *testing.T) {
		modeltest.CheckHandler(t, "blocking", modeltest.HandlerOptions{Config: server.Config{Pool: 2}})
	})
}
