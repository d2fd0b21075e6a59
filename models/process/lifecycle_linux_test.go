package process

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"
)

// startAny starts the model with the given pool and returns it with a way to list its children.
func startAny(t *testing.T, pool int) (server.Server, func() []int) {
	t.Helper()
	srv := modeltest.Start(t, "process", server.Config{Pool: pool, OutboundLimit: modeltest.TestOutboundLimit})
	if pool == 0 {
		return srv, srv.(*perConn).childPIDs
	}
	return srv, srv.(*prefork).workerPIDs
}

// TestChildrenIgnoreSIGINT is Ctrl-C on echoserver: the terminal sends SIGINT to the foreground
// process group. The children must not be in the parent's group, and must survive a SIGINT
// aimed at them, so that the parent's Close stops them in order and their bytes are counted.
func TestChildrenIgnoreSIGINT(t *testing.T) {
	for _, pool := range []int{0, 2} {
		t.Run(fmt.Sprintf("pool%d", pool), func(t *testing.T) {
			srv, pids := startAny(t, pool)
			c, err := modeltest.Dial(srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := modeltest.Echo(c, 1, 0, 1000); err != nil {
				t.Fatal(err)
			}
			var children []int
			for deadline := time.Now().Add(10 * time.Second); len(children) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				children = pids() // a connection child is listed just after it starts
			}
			if len(children) == 0 {
				t.Fatal("no child is listed while a client is being served")
			}
			ourGroup := syscall.Getpgrp()
			for _, pid := range children {
				pgid, err := syscall.Getpgid(pid)
				if err != nil {
					t.Fatalf("getpgid %d: %v", pid, err)
				}
				if pgid == ourGroup {
					t.Errorf("child %d is in the parent's process group %d: a terminal's Ctrl-C would kill it", pid, pgid)
				}
				// What a group-wide SIGINT would deliver to the child, had it been in the group.
				if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
					t.Fatalf("SIGINT child %d: %v", pid, err)
				}
			}
			// The signal is delivered asynchronously; an echo after it proves the child lives on.
			if err := modeltest.Echo(c, 1, 1000, 1000); err != nil {
				t.Fatalf("echo after SIGINT to the children: %v", err)
			}
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			if st := srv.Stats(); st.BytesIn != 2000 || st.BytesOut != 2000 {
				t.Errorf("after SIGINT and Close: bytes in %d, out %d; want 2000 each", st.BytesIn, st.BytesOut)
			}
		})
	}
}

// TestProgressMidRun checks that a live connection's bytes reach Stats before it ends.
func TestProgressMidRun(t *testing.T) {
	for _, pool := range []int{0, 1} {
		t.Run(fmt.Sprintf("pool%d", pool), func(t *testing.T) {
			srv, _ := startAny(t, pool)
			c, err := modeltest.Dial(srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Keep echoing small messages: the child reports once progressEvery has passed.
			for off, deadline := 0, time.Now().Add(30*time.Second); ; off += 100 {
				if err := modeltest.Echo(c, 2, off, 100); err != nil {
					t.Fatal(err)
				}
				if st := srv.Stats(); st.BytesIn > 0 && st.BytesOut > 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("after %d bytes echoed on a live connection Stats shows none", off+100)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestBrokenListenerFails breaks the listening socket under a running server: shutdown(SHUT_RD)
// on a listener makes every later accept fail with EINVAL. The server must stop and say why,
// not retry forever (Pool 0), nor replace workers that die at once forever (prefork).
func TestBrokenListenerFails(t *testing.T) {
	for _, pool := range []int{0, 2} {
		t.Run(fmt.Sprintf("pool%d", pool), func(t *testing.T) {
			srv, err := Start(server.Config{Addr: "127.0.0.1:0", Pool: pool, Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var raw syscall.RawConn
			switch s := srv.(type) {
			case *perConn:
				raw = s.rawLn
			case *prefork:
				if raw, err = s.listener.SyscallConn(); err != nil {
					t.Fatal(err)
				}
			}
			raw.Control(func(fd uintptr) {
				if err := unix.Shutdown(int(fd), unix.SHUT_RD); err != nil {
					t.Fatalf("shutdown listener: %v", err)
				}
			})
			stopped := make(chan error, 1)
			go func() { stopped <- srv.Wait() }()
			select {
			case err = <-stopped:
			case <-time.After(60 * time.Second):
				t.Fatal("the server kept running on a listener that cannot accept")
			}
			want := "invalid argument" // EINVAL from accept4
			if pool > 0 {
				want = "in a row died"
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Wait = %v, want an error containing %q", err, want)
			}
			t.Logf("the server stopped with: %v", err)
		})
	}
}
