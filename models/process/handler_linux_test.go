package process

import (
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"echobench/models/modeltest"
	"echobench/server"
)

// TestHandler checks that -work and -block reach the child processes and run there, in a child
// per connection and in prefork workers. The Work check counts the children's CPU time, which
// the test process sees once Close has reaped them.
func TestHandler(t *testing.T) {
	modeltest.CheckHandler(t, "process", modeltest.HandlerOptions{})
	t.Run("Prefork", func(t *testing.T) {
		modeltest.CheckHandler(t, "process", modeltest.HandlerOptions{Config: server.Config{Pool: 2}})
	})
}

// TestChildArgsCarryConfig checks that what a child parses from its arguments is the server's
// configuration: the handler's costs and the outbound limit that sizes its buffer among it.
func TestChildArgsCarryConfig(t *testing.T) {
	want := server.Config{Pool: 3, OutboundLimit: 4096, Work: 50 * time.Microsecond, Block: 2 * time.Millisecond}
	role, parent, got, err := parseChildArgs(childArgs(want, roleWorker))
	if err != nil {
		t.Fatal(err)
	}
	if role != roleWorker || parent != strconv.Itoa(os.Getpid()) {
		t.Errorf("role %q, parent %q: want %q, %d", role, parent, roleWorker, os.Getpid())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the child parsed %+v, want %+v", got, want)
	}
	if _, _, _, err := parseChildArgs([]string{roleConn, parent, "-work=soon"}); err == nil {
		t.Error("a child accepted -work=soon")
	}
}
