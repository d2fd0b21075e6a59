package nonblocking_test

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"

	_ "echobench/models/nonblocking"
)

func TestConformance(t *testing.T) {
	modeltest.Run(t, "nonblocking", modeltest.Options{})
}

// TestAcceptEMFILE runs the server out of file descriptors: accept is retried every pass, but the
// failure must be logged once, not every pass, and a client waiting in the backlog must be served
// once descriptors are free again.
func TestAcceptEMFILE(t *testing.T) {
	logs := &modeltest.LogLines{T: t, Contains: "accept4"}
	srv := modeltest.Start(t, "nonblocking", server.Config{Logf: logs.Logf})
	client := modeltest.RawSocket(t)
	defer unix.Close(client)

	restore := modeltest.LowerFDLimit(t, 3)
	modeltest.RawConnect(t, client, srv.Addr())
	if _, err := unix.Write(client, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	modeltest.WaitFor(t, "a logged accept failure", func() bool { return logs.Count() > 0 })
	// Many thousands of passes go by, each retrying accept, but one burst is logged once.
	time.Sleep(500 * time.Millisecond)
	if n := logs.Count(); n != 1 {
		t.Errorf("accept failure logged %d times during one EMFILE burst, want once", n)
	}
	restore()
	modeltest.RawExpect(t, client, "ping", "client that waited out EMFILE")
}
