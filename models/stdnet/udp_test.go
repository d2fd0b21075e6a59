package stdnet_test

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"echobench/internal/sockutil"
	"echobench/models/modeltest"
	"echobench/server"
)

func TestUDPConformance(t *testing.T) { modeltest.RunUDP(t, "stdnet", modeltest.Options{}) }

// exchange sends p on conn and returns the reply.
func exchange(t *testing.T, conn *net.UDPConn, p []byte) []byte {
	t.Helper()
	if _, err := conn.Write(p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, sockutil.MaxDatagram+1)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reply to %d bytes: %v", len(p), err)
	}
	return buf[:n]
}

func dialUDP(t *testing.T, srv server.Server) *net.UDPConn {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestUDPEcho has several clients send datagrams from empty to the largest IPv4 carries, one at
// a time, and checks every reply and the server's counts.
func TestUDPEcho(t *testing.T) {
	srv := modeltest.Start(t, "stdnet", server.Config{UDP: true, Loops: 3})
	sizes := []int{0, 1, 64, 1472, 65507}
	const clients = 6
	total := 0
	for c := range clients {
		conn := dialUDP(t, srv)
		for _, size := range sizes {
			want := bytes.Repeat([]byte{byte(c + size)}, size)
			if got := exchange(t, conn, want); !bytes.Equal(got, want) {
				t.Fatalf("client %d sent %d bytes and got %d other bytes back", c, size, len(got))
			}
			total += size
		}
	}
	want := server.Stats{
		BytesIn: uint64(total), BytesOut: uint64(total),
		DatagramsIn: clients * uint64(len(sizes)), DatagramsOut: clients * uint64(len(sizes)),
	}
	if got := srv.Stats(); got != want {
		t.Errorf("server counted %+v, want %+v", got, want)
	}
}

// TestUDPHandlerRunsBeforeEcho checks that a datagram's reply waits for the handler's blocking
// call: with Block set, no reply comes sooner than Block after its datagram.
func TestUDPHandlerRunsBeforeEcho(t *testing.T) {
	const block = 20 * time.Millisecond
	srv := modeltest.Start(t, "stdnet", server.Config{UDP: true, Loops: 1, Block: block})
	conn := dialUDP(t, srv)
	for i := range 3 {
		start := time.Now()
		if got := exchange(t, conn, []byte{byte(i)}); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("reply %d: %q", i, got)
		}
		if took := time.Since(start); took < block {
			t.Errorf("reply %d came %v after its datagram, before the handler's %v call could have returned", i, took, block)
		}
	}
}

// TestUDPCloseLeavesNothing checks that Close returns, may be called again, and leaves no
// goroutine or fd behind.
func TestUDPCloseLeavesNothing(t *testing.T) {
	// Warm up the netpoller, whose epoll fd and eventfd stay for the life of the process.
	if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		c.Close()
	}
	fdsBefore, err := modeltest.CountFDs()
	if err != nil {
		t.Skip(err)
	}
	goroutinesBefore := runtime.NumGoroutine()
	m, err := server.Lookup("stdnet")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := m.Launch(server.Config{Addr: "127.0.0.1:0", UDP: true, Loops: 4, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	if got := exchange(t, conn, []byte("x")); string(got) != "x" {
		t.Fatalf("reply %q", got)
	}
	conn.Close()
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	modeltest.WaitFor(t, "the server's goroutines and fds to go", func() bool {
		fds, _ := modeltest.CountFDs()
		return fds <= fdsBefore && runtime.NumGoroutine() <= goroutinesBefore
	})
}
