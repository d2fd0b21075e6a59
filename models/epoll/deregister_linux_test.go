package epoll_test

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"
)

// epollTargets returns, for every epoll instance of this process, the fds registered in it, read
// from /proc/self/fdinfo (one "tfd: N" line per registration).
func epollTargets(t *testing.T) map[string]map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list fds: %v", err)
	}
	sets := map[string]map[int]bool{}
	for _, e := range ents {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		set := map[int]bool{}
		for _, line := range strings.Split(string(info), "\n") {
			var tfd int
			if _, err := fmt.Sscanf(line, "tfd: %d", &tfd); err == nil {
				set[tfd] = true
			}
		}
		sets[e.Name()] = set
	}
	return sets
}

// TestCloseDeregistersWhileFDIsShared closes a connection whose socket another descriptor still
// refers to, as a child forked by another goroutine would until it execs. close(2) alone would
// leave the socket in the loop's epoll set, reported on every wait; the loop must deregister it.
func TestCloseDeregistersWhileFDIsShared(t *testing.T) {
	srv := modeltest.Start(t, "epoll", server.Config{Loops: 1})
	before := epollTargets(t)

	// A raw socket, so that the Go netpoller registers nothing of ours meanwhile.
	client, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(client)
	addr := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: srv.Addr().(*net.TCPAddr).Port}
	if err := unix.Connect(client, addr); err != nil {
		t.Fatal(err)
	}

	// Find the accepted socket: the one fd newly registered in an epoll set.
	epfd, connFD := "", -1
	for deadline := time.Now().Add(10 * time.Second); connFD < 0; time.Sleep(5 * time.Millisecond) {
		for ep, set := range epollTargets(t) {
			for fd := range set {
				if !before[ep][fd] {
					epfd, connFD = ep, fd
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the accepted connection never appeared in an epoll set")
		}
	}
	shared, err := unix.Dup(connFD)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(shared)

	// The client leaves; the server closes its fd, but the socket lives on through shared.
	unix.Close(client)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st := srv.Stats(); st.Accepted == 1 && st.Active == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never closed the connection")
		}
	}
	if epollTargets(t)[epfd][connFD] {
		t.Errorf("fd %d is still registered in epoll fd %s after the server closed it", connFD, epfd)
	}
}
