package selectmodel_test

import (
	"net"
	"os"
	"testing"
	"time"

	"echobench/internal/reexec"
	"echobench/models/modeltest"
	_ "echobench/models/selectmodel"
)

func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

// TestAcceptEMFILE runs a server that can hold 4 connections and sends it 8: the other 4 wait in
// the backlog while accept fails with EMFILE, and are served as the first ones close. The server
// must not spin meanwhile, and logs the burst once.
func TestAcceptEMFILE(t *testing.T) {
	const slots, clients = 4, 8
	// The server runs in a child process, so that lowering its RLIMIT_NOFILE starves it of fds
	// without starving its clients.
	srv := modeltest.StartChild(t, modeltest.ChildOptions{Model: "select", FDSlots: slots})
	addr := srv.Addr

	conns := make([]*net.TCPConn, clients)
	echoed := make(chan int, clients)
	for i := range conns {
		c, err := modeltest.Dial(addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		conns[i] = c
		go func() {
			if err := modeltest.Echo(c, i, 0, 100); err != nil {
				t.Errorf("conn %d: %v", i, err)
				echoed <- -1
				return
			}
			echoed <- i
		}()
	}
	waitFor(t, "the server to log EMFILE", func() bool { return len(srv.LogLines("too many open files")) > 0 })

	// With clients waiting in the backlog and no fd to take them, the loop must sleep in select
	// between retries. An idle loop uses next to no CPU; a spinning one uses a whole core.
	cpuBefore := srv.CPUTime(t)
	window := time.Second
	time.Sleep(window)
	if used := srv.CPUTime(t) - cpuBefore; used > window/2 {
		t.Errorf("the server used %v of CPU in %v while accept failed with EMFILE: it spins", used, window)
	} else {
		t.Logf("the server used %v of CPU in %v while accept failed with EMFILE", used, window)
	}

	// Each served client that closes frees an fd, which lets one waiting client in.
	for done := 0; done < clients; done++ {
		i := <-echoed
		if i < 0 {
			t.FailNow()
		}
		conns[i].Close()
	}

	stats, exited := srv.Stop(t)
	if !exited {
		t.FailNow() // Stop has reported how the server process failed
	}
	if stats.Accepted != clients || stats.Rejected != 0 || stats.Active != 0 {
		t.Errorf("server process counted accepted=%d rejected=%d active=%d, want accepted=%d rejected=0 active=0",
			stats.Accepted, stats.Rejected, stats.Active, clients)
	}
	if lines := srv.LogLines("too many open files"); len(lines) != 1 {
		t.Errorf("one EMFILE burst logged %d times, want once: %q", len(lines), lines)
	} else {
		t.Logf("server log: %s", lines[0])
	}
}
