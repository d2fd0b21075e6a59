package uring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"
)

// TestConformanceOldKernelPaths runs the suite again the way a kernel before 5.19 is served:
// plain recv into per-connection buffers and one accept SQE per connection.
func TestConformanceOldKernelPaths(t *testing.T) {
	disableBufRing, disableMultishot = true, true
	t.Cleanup(func() { disableBufRing, disableMultishot = false, false })
	modeltest.Run(t, "uring", modeltest.Options{})
}

// TestConformanceSingleRecv runs the suite the way a kernel before 6.17 is served: one recv into a
// provided buffer per arrival, with no multishot recv.
func TestConformanceSingleRecv(t *testing.T) {
	disableMultishotRecv = true
	t.Cleanup(func() { disableMultishotRecv = false })
	modeltest.Run(t, "uring", modeltest.Options{})
}

// TestConformanceMultishotRefused runs the suite with every multishot recv refused (EINVAL), as
// by a kernel before 6.17: the loops must say so and serve on with single recvs.
func TestConformanceMultishotRefused(t *testing.T) {
	refuseMultishotRecv = true
	t.Cleanup(func() { refuseMultishotRecv = false })
	logs := &modeltest.LogLines{T: t, Contains: "multishot recv with a byte limit unsupported"}
	modeltest.Run(t, "uring", modeltest.Options{Config: server.Config{Logf: logs.Logf}})
	if n := logs.Count(); n == 0 {
		t.Error("no loop reported the refused multishot recv")
	}
}

// TestConformanceTinyOutbound runs the suite on one loop with an outbound limit smaller than one
// provided buffer, so that every recv is capped by the room left and backpressure is constant.
func TestConformanceTinyOutbound(t *testing.T) {
	modeltest.Run(t, "uring", modeltest.Options{Config: server.Config{Loops: 1, OutboundLimit: 1000}})
}

// TestConformanceStarvedPool runs the suite with a single provided buffer per loop, so that
// most recvs find the pool empty (ENOBUFS) and must be posted again without losing or reordering
// data. It also shows that no connection keeps a provided buffer while its client is not reading:
// if one did, the slow-reader check would starve every other connection of that loop.
func TestConformanceStarvedPool(t *testing.T) {
	poolBuffers = 1
	t.Cleanup(func() { poolBuffers = bufCount })
	modeltest.Run(t, "uring", modeltest.Options{})
}

// backlogTimeout is a global because the kernel reads it when the SQE is submitted, after push
// has returned: a goroutine's stack, unlike a global, may move in between.
var backlogTimeout = timespec{nsec: 1000}

// TestSubmissionBacklog pushes more operations than the submission queue holds: the extra ones
// must wait in the backlog and still be submitted, each completing exactly once.
func TestSubmissionBacklog(t *testing.T) {
	if err := available(); err != nil {
		t.Skip(err)
	}
	runtime.LockOSThread() // a single-issuer ring belongs to the thread that made it
	defer runtime.UnlockOSThread()
	r, err := newRing(4, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	const ops = 100
	for i := range ops {
		r.push(timeoutSQE(&backlogTimeout, uint64(i)))
	}
	seen := make(map[uint64]int)
	for len(seen) < ops {
		if err := r.submitAndWait(true); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatal(err)
		}
		r.reap(func(e cqe) {
			seen[e.userData]++
			if e.res != -int32(unix.ETIME) {
				t.Errorf("timeout %d completed with %d, want -ETIME", e.userData, e.res)
			}
		})
	}
	for ud, n := range seen {
		if ud >= ops || n != 1 {
			t.Errorf("user data %d completed %d times", ud, n)
		}
	}
}

// TestFiveThousandConns holds 5,000 connections open at once and echoes on every one.
func TestFiveThousandConns(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 connections: skipped in -short mode")
	}
	srv := modeltest.Start(t, "uring", server.Config{Logf: t.Logf})
	conns := modeltest.HoldConns(t, srv.Addr().String(), 5000, 1000)
	if st := srv.Stats(); st.Active != int64(len(conns)) {
		t.Errorf("server has %d active connections, want %d", st.Active, len(conns))
	}
}

// TestAcceptEMFILE runs the process out of file descriptors while clients connect: accept must
// back off instead of spinning, log the storm once rather than at every retry, and serve the
// waiting clients once fds are free again.
func TestAcceptEMFILE(t *testing.T) {
	var mu sync.Mutex
	pauses := 0   // "accept: too many open files; pausing accept" lines
	resumed := -1 // the count of failed accepts in the "accepting again" line
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(line, unix.EMFILE.Error()) {
			pauses++
		}
		var loop, n int
		if _, err := fmt.Sscanf(line, "uring: loop %d: accepting again after %d failed accepts", &loop, &n); err == nil {
			resumed = n
		}
	}
	logged := func() (int, int) { mu.Lock(); defer mu.Unlock(); return pauses, resumed }
	// The client sockets are made while fds are plentiful: connect(2) needs no new fd.
	const nClients = 3
	const serverFDs = 8 // a ring, a listener and an eventfd, with room to spare
	var clients []int
	t.Cleanup(func() {
		for _, fd := range clients {
			unix.Close(fd)
		}
	})
	for range nClients {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, fd)
		tv := unix.Timeval{Sec: 20}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}

	// Lower the fd limit to just above the highest fd in use, leaving room for the server's own
	// fds, start the server, then fill every free number below the limit: the next accept in
	// this process fails with EMFILE. The server must start under the lowered limit because
	// io_uring reads RLIMIT_NOFILE when an accept is armed, not when it accepts.
	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	highest := 0
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list fds: %v", err)
	}
	for _, e := range ents {
		var fd int
		fmt.Sscan(e.Name(), &fd)
		highest = max(highest, fd)
	}
	lowered := saved
	lowered.Cur = uint64(highest + 1 + serverFDs)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)
		}
	}
	t.Cleanup(restore)
	srv := modeltest.Start(t, "uring", server.Config{Loops: 1, Logf: logf})
	addr := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: srv.Addr().(*net.TCPAddr).Port}
	var spares []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		spares = append(spares, fd)
	}

	for _, fd := range clients {
		if err := unix.Connect(fd, addr); err != nil {
			restore()
			t.Fatalf("connect: %v", err)
		}
	}
	// The connections wait in the listen backlog while accept fails and backs off.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, _ := logged(); p > 0 {
			break
		}
		if time.Now().After(deadline) {
			restore()
			t.Fatal("accept never reported EMFILE")
		}
	}
	paused := time.Now()
	time.Sleep(500 * time.Millisecond)
	if p, _ := logged(); p != 1 {
		t.Errorf("EMFILE logged %d times while out of fds, want once per storm", p)
	}
	if st := srv.Stats(); st.Accepted != 0 {
		t.Errorf("accepted %d connections with no fd to put them in", st.Accepted)
	}

	// Free the fds, still under the lowered limit: the server must pick up the waiting clients.
	for _, fd := range spares {
		unix.Close(fd)
	}
	outOfFDs := time.Since(paused)
	for i, fd := range clients {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		if _, err := unix.Write(fd, msg); err != nil {
			restore()
			t.Fatalf("client %d write: %v", i, err)
		}
		got := make([]byte, 0, len(msg))
		buf := make([]byte, len(msg))
		for len(got) < len(msg) {
			n, err := unix.Read(fd, buf)
			if err != nil || n == 0 {
				restore()
				t.Fatalf("client %d read after %d bytes: n=%d err=%v", i, len(got), n, err)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, msg) {
			t.Errorf("client %d: echo differs", i)
		}
	}
	restore()
	if st := srv.Stats(); st.Accepted != nClients {
		t.Errorf("accepted %d connections, want %d", st.Accepted, nClients)
	}
	// The resume line is logged before the first connection is served, so it is in by now. Its
	// count shows the backoff: one retry per acceptBackoff, where a spinning accept would make
	// thousands. The bound allows ten times the paced rate; a slow machine only retries less.
	pauses, retries := logged()
	t.Logf("accept failed %d times in %v out of fds", retries, outOfFDs.Round(time.Millisecond))
	if retries < 1 {
		t.Errorf("no \"accepting again\" line after the storm (retries %d)", retries)
	}
	if limit := int(outOfFDs/(acceptBackoff/10)) + 10; retries > limit {
		t.Errorf("accept failed %d times in %v out of fds: it spins instead of backing off", retries, outOfFDs)
	}
	if pauses != 1 {
		t.Errorf("EMFILE logged %d times in one storm, want once", pauses)
	}
}

// TestMultishotRecvLimit checks the kernel behaviour armRecv's bound rests on: a multishot recv
// with a byte limit completes once per arrival with F_MORE, each completion in one provided
// buffer, and ends (no F_MORE) with the completion that reaches the limit, even when that one
// overshoots it. It skips on kernels without the limit, where the model posts single recvs.
func TestMultishotRecvLimit(t *testing.T) {
	if err := available(); err != nil {
		t.Skip(err)
	}
	runtime.LockOSThread() // a single-issuer ring belongs to the thread that made it
	defer runtime.UnlockOSThread()
	r, err := newRing(8, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	bufs, err := newBufRing(r, bufGroup, 4, bufSize)
	if err != nil {
		t.Skip(err) // before Linux 5.19
	}
	defer bufs.unmap()
	defer bufs.unregister(r)

	client, f := tcpPair(t)

	const limit, piece = 150, 100
	r.push(recvMultishotSQE(int(f.Fd()), bufGroup, limit, false, 1))
	next := func() cqe {
		t.Helper()
		var got []cqe
		for len(got) == 0 {
			if err := r.submitAndWait(true); err != nil && !errors.Is(err, unix.EINTR) {
				t.Fatal(err)
			}
			r.reap(func(e cqe) { got = append(got, e) })
		}
		if len(got) != 1 {
			t.Fatalf("%d completions at once, want 1: %+v", len(got), got)
		}
		return got[0]
	}
	for i, wantMore := range []bool{true, false} { // 100 bytes, then 200 >= 150: the end
		if _, err := client.Write(bytes.Repeat([]byte{byte('a' + i)}, piece)); err != nil {
			t.Fatal(err)
		}
		e := next()
		if i == 0 && e.res == -int32(unix.EINVAL) {
			t.Skip("this kernel has no byte limit for multishot recv (Linux 6.17): the model posts single recvs")
		}
		more := e.flags&cqeFMore != 0
		if e.res != piece || e.flags&cqeFBuffer == 0 || more != wantMore {
			t.Fatalf("completion %d: res %d flags %#x, want %d bytes in a provided buffer, F_MORE %v", i, e.res, e.flags, piece, wantMore)
		}
		if got := bufs.buf(uint16(e.flags >> cqeBufferShift))[:piece]; got[0] != byte('a'+i) || got[piece-1] != byte('a'+i) {
			t.Errorf("completion %d: buffer holds %q..., want the bytes sent", i, got[:4])
		}
	}
}

// TestInlineWait checks what publish's count of inline completions rests on: an io_uring_enter
// that submits a MSG_DONTWAIT send with pushInline and waits sleeps past the send's completion,
// which the kernel posts during the submission, until the next one arrives (here the peer's
// reply), and returns both; dropInline and a backlog make the wait count nothing inline.
func TestInlineWait(t *testing.T) {
	if err := available(); err != nil {
		t.Skip(err)
	}
	runtime.LockOSThread() // a single-issuer ring belongs to the thread that made it
	defer runtime.UnlockOSThread()
	r, err := newRing(4, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()

	client, f := tcpPair(t)
	peerDone := make(chan error, 1)
	go func() { // the peer reads the send, then replies
		buf := make([]byte, 10)
		_, err := io.ReadFull(client, buf)
		if err == nil {
			_, err = client.Write(buf[:5])
		}
		peerDone <- err
	}()

	sendBuf := []byte("0123456789")
	recvBuf := make([]byte, 64)
	r.push(recvSQE(int(f.Fd()), recvBuf, 1))
	r.pushInline(sendSQE(int(f.Fd()), sendBuf, unix.MSG_DONTWAIT, 2))
	if err := r.submitAndWait(true); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	r.reap(func(e cqe) { got[e.userData] = e.res })
	if got[2] != int32(len(sendBuf)) || got[1] != 5 || len(got) != 2 {
		t.Errorf("one wait returned %v (user data: res), want the send's 10 bytes and the reply's 5", got)
	}
	runtime.KeepAlive(sendBuf)
	runtime.KeepAlive(recvBuf)
	if err := <-peerDone; err != nil {
		t.Fatal(err)
	}

	r.pushInline(timeoutSQE(&backlogTimeout, 3))
	r.dropInline()
	if _, minComplete := r.publish(true); minComplete != 1 {
		t.Errorf("after dropInline: wait for %d completions, want 1", minComplete)
	}
	for i := range 6 { // published, not submitted: the 4-entry queue has room for 3 of them
		r.pushInline(timeoutSQE(&backlogTimeout, uint64(10+i)))
	}
	if _, minComplete := r.publish(true); minComplete != 0 {
		t.Errorf("with a backlog: wait for %d completions, want 0", minComplete)
	}
}

// tcpPair connects a loopback client to a listener and returns the client and the accepted end as
// a file: a blocking duplicate of its descriptor the ring may use. All of it closes with the test.
func tcpPair(t *testing.T) (net.Conn, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	f, err := accepted.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return client, f
}
