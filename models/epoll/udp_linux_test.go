package epoll

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/models/modeltest"
	"echobench/server"
)

func TestUDPConformance(t *testing.T) { modeltest.RunUDP(t, "epoll", modeltest.Options{}) }

func startUDP(t *testing.T, cfg server.Config) server.Server {
	t.Helper()
	cfg.Addr, cfg.Logf = "127.0.0.1:0", t.Logf
	srv, err := StartUDP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv
}

// datagram is client's i-th datagram of size bytes: its bytes say whose and which it is.
func datagram(client, i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(client*7 + i*13 + j)
	}
	return b
}

// TestUDPEcho has several clients, spread over the loops' sockets by the kernel's hash, each send
// datagrams from empty to the largest IPv4 carries, one at a time, and checks every reply and
// the server's counts.
func TestUDPEcho(t *testing.T) {
	if m, err := server.Lookup("epoll"); err != nil || m.StartUDP == nil {
		t.Fatalf("epoll is registered without its UDP variant (%v)", err)
	}
	srv := startUDP(t, server.Config{Loops: 2})
	sizes := []int{0, 1, 64, 1472, 65507}
	const clients = 8
	buf := make([]byte, sockutil.MaxDatagram+1)
	wantBytes := 0
	for c := range clients {
		conn, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for i, size := range sizes {
			want := datagram(c, i, size)
			if _, err := conn.Write(want); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("client %d, reply to %d bytes: %v", c, size, err)
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("client %d sent %d bytes and got %d other bytes back", c, size, n)
			}
			wantBytes += size
		}
	}
	want := server.Stats{
		BytesIn: uint64(wantBytes), BytesOut: uint64(wantBytes),
		DatagramsIn: clients * uint64(len(sizes)), DatagramsOut: clients * uint64(len(sizes)),
	}
	if got := srv.Stats(); got != want {
		t.Errorf("server counted %+v, want %+v", got, want)
	}
}

// TestUDPHandlerRunsBeforeEcho checks that every datagram waits for the handler's blocking call
// before its reply: with Block set, no reply comes sooner than Block after its datagram.
func TestUDPHandlerRunsBeforeEcho(t *testing.T) {
	const block = 20 * time.Millisecond
	srv := startUDP(t, server.Config{Loops: 1, Block: block})
	conn, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 64)
	for i := range 3 {
		start := time.Now()
		if _, err := conn.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(buf); err != nil || n != 1 || buf[0] != byte(i) {
			t.Fatalf("reply %d: %q, %v", i, buf[:n], err)
		}
		if took := time.Since(start); took < block {
			t.Errorf("reply %d came %v after its datagram, before the handler's %v call could have returned", i, took, block)
		}
	}
}

// TestUDPReplyQueueBound serves one end of a unix datagram socket pair, whose sends fail with
// EAGAIN while the peer's receive queue is full (over loopback UDP they never do: the kernel drops
// what the receiver cannot take, and the sender never knows). The client sends far more than its
// receive queue and the reply queue hold together, without reading: the server must hold exactly
// ReplyQueueLimit replies, drop and count the rest, and send every held reply, unchanged, once the
// client reads.
func TestUDPReplyQueueBound(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	client := fds[1]
	defer unix.Close(client)
	srv, err := serveDatagrams(server.Config{Logf: t.Logf}, fds[:1], &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		unix.Close(fds[0])
		t.Fatal(err)
	}
	defer srv.Close()

	const total, size = 4 * sockutil.ReplyQueueLimit, 100
	message := func(seq int) []byte {
		b := make([]byte, size)
		binary.BigEndian.PutUint32(b, uint32(seq))
		for j := 4; j < size; j++ {
			b[j] = byte(seq + j)
		}
		return b
	}
	for seq, deadline := 0, time.Now().Add(30*time.Second); seq < total; {
		_, err := unix.Write(client, message(seq))
		switch {
		case err == nil:
			seq++
		case errors.Is(err, unix.EAGAIN):
			// The server's receive queue is full: it is reading, wait for room.
			if time.Now().After(deadline) {
				t.Fatalf("the server took %d of %d datagrams", seq, total)
			}
			unix.Poll([]unix.PollFd{{Fd: int32(client), Events: unix.POLLOUT}}, 100)
		default:
			t.Fatal(err)
		}
	}
	// With the client not reading, nothing the server holds can leave: the figures settle.
	modeltest.WaitFor(t, "the server to read every datagram and fill its reply queue", func() bool {
		st := srv.Stats()
		return st.DatagramsIn == total && st.DatagramsIn-st.DatagramsOut-st.Dropped == sockutil.ReplyQueueLimit
	})
	st := srv.Stats()
	t.Logf("client not reading: %d echoed (in its receive queue), %d held, %d dropped", st.DatagramsOut, sockutil.ReplyQueueLimit, st.Dropped)
	if st.Dropped == 0 {
		t.Fatalf("nothing dropped: %+v", st)
	}

	// The client reads: the held replies arrive, each a datagram it sent, none twice.
	seen := map[int]bool{}
	buf := make([]byte, size+1)
	for deadline := time.Now().Add(30 * time.Second); ; {
		n, err := unix.Read(client, buf)
		if errors.Is(err, unix.EAGAIN) {
			if st := srv.Stats(); st.DatagramsOut+st.Dropped == total && len(seen) == int(st.DatagramsOut) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the client got %d replies; server %+v", len(seen), srv.Stats())
			}
			unix.Poll([]unix.PollFd{{Fd: int32(client), Events: unix.POLLIN}}, 100)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		seq := int(binary.BigEndian.Uint32(buf))
		if n != size || !bytes.Equal(buf[:n], message(seq)) || seen[seq] {
			t.Fatalf("reply of %d bytes claiming datagram %d is not it, or came twice (seen %v)", n, seq, seen[seq])
		}
		seen[seq] = true
	}
	if st := srv.Stats(); st.BytesOut != st.DatagramsOut*size || st.BytesIn != total*size {
		t.Errorf("byte counts %+v, want %d per datagram", st, size)
	}
}

// TestUDPCloseLeavesNothing checks that Close returns, may be called again, and leaves no
// goroutine or fd behind.
func TestUDPCloseLeavesNothing(t *testing.T) {
	fdsBefore, err := modeltest.CountFDs()
	if err != nil {
		t.Skip(err)
	}
	goroutinesBefore := runtime.NumGoroutine()
	srv, err := StartUDP(server.Config{Addr: "127.0.0.1:0", Loops: 3, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	conn.Close()
	modeltest.WaitFor(t, "the server's goroutines and fds to go", func() bool {
		fds, _ := modeltest.CountFDs()
		return fds <= fdsBefore && runtime.NumGoroutine() <= goroutinesBefore
	})
}
