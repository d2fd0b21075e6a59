package blocking

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"echobench/internal/sockutil"
	"echobench/models/modeltest"
	"echobench/server"
)

// udpSizes are the datagrams the tests echo: empty, tiny, one Ethernet frame's worth, and the
// largest IPv4 allows.
var udpSizes = []int{0, 1, 64, 1472, sockutil.MaxDatagram - 20}

// TestUDPConformance runs the shared UDP suite on the thread-per-datagram server.
func TestUDPConformance(t *testing.T) {
	modeltest.RunUDP(t, "blocking", modeltest.Options{})
}

// TestUDPConformancePool runs it on a pool of four recvfrom/sendto threads.
func TestUDPConformancePool(t *testing.T) {
	modeltest.RunUDP(t, "blocking", modeltest.Options{Config: server.Config{Pool: 4}})
}

func startUDP(t *testing.T, cfg server.Config) server.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
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

func dialUDP(t *testing.T, srv server.Server) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// readReply reads one datagram and checks that it is want exactly.
func readReply(t *testing.T, c *net.UDPConn, want []byte) {
	t.Helper()
	buf := make([]byte, sockutil.MaxDatagram+1)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("waiting for the echo of %d bytes: %v", len(want), err)
	}
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("echo of %d bytes: got %d bytes that differ", len(want), n)
	}
}

// TestUDPEcho echoes every size, an empty datagram included, from several clients at once, on the
// thread-per-datagram server and on pools, and checks the counters against the traffic.
func TestUDPEcho(t *testing.T) {
	for _, pool := range []int{0, 1, 4} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			srv := startUDP(t, server.Config{Pool: pool})
			const clients = 4
			conns := make([]*net.UDPConn, clients)
			for i := range conns {
				conns[i] = dialUDP(t, srv)
			}
			bytesEchoed := 0
			for _, size := range udpSizes {
				msgs := make([][]byte, clients)
				for i, c := range conns {
					msgs[i] = make([]byte, size)
					modeltest.Pattern(msgs[i], i, size)
					if _, err := c.Write(msgs[i]); err != nil {
						t.Fatal(err)
					}
				}
				for i, c := range conns {
					readReply(t, c, msgs[i])
				}
				bytesEchoed += clients * size
			}
			want := server.Stats{
				BytesIn: uint64(bytesEchoed), BytesOut: uint64(bytesEchoed),
				DatagramsIn: uint64(clients * len(udpSizes)), DatagramsOut: uint64(clients * len(udpSizes)),
			}
			// The reply is sent before it is counted, so the last count may trail its echo.
			modeltest.WaitFor(t, "counters to match the traffic", func() bool { return srv.Stats() == want })
		})
	}
}

// TestUDPEchoIPv6 echoes over ::1, whose sender addresses are larger than IPv4's.
func TestUDPEchoIPv6(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	srv := startUDP(t, server.Config{Addr: "[::1]:0", Pool: 2})
	c := dialUDP(t, srv)
	for _, size := range []int{0, 100, sockutil.MaxDatagram} {
		msg := bytes.Repeat([]byte{7}, size)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		readReply(t, c, msg)
	}
}

// TestUDPThreadCeiling checks the bound of the thread-per-datagram server: with datagram threads
// at the ceiling, each busy in the handler, a further datagram is read and dropped, counted, and
// not answered, while the busy threads still answer theirs.
func TestUDPThreadCeiling(t *testing.T) {
	const ceiling, extra = 4, 3
	datagramThreads = ceiling
	t.Cleanup(func() { datagramThreads = datagramThreadCeiling })
	// The handler's Block keeps each thread alive at least this long: the extra datagrams must
	// reach the server before the first thread is done.
	srv := startUDP(t, server.Config{Block: 2 * time.Second})
	s := srv.(*udpSrv)
	c := dialUDP(t, srv)
	send := func(i int) []byte {
		msg := []byte(fmt.Sprintf("datagram %d", i))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		return msg
	}
	var answered [][]byte
	for i := range ceiling {
		answered = append(answered, send(i))
	}
	modeltest.WaitFor(t, "a thread for each datagram up to the ceiling", func() bool { return s.handling.Load() == ceiling })
	for i := range extra {
		send(ceiling + i)
	}
	modeltest.WaitFor(t, "the datagrams past the ceiling to be dropped", func() bool { return srv.Stats().Dropped == extra })
	got := map[string]bool{}
	buf := make([]byte, 100)
	for range ceiling {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("echo from a datagram thread: %v", err)
		}
		got[string(buf[:n])] = true
	}
	for _, msg := range answered {
		if !got[string(msg)] {
			t.Errorf("no echo of %q, which had a thread", msg)
		}
	}
	modeltest.WaitFor(t, "every datagram thread to end", func() bool { return s.handling.Load() == 0 })
	if st := srv.Stats(); st.DatagramsIn != ceiling+extra || st.DatagramsOut != ceiling || st.Dropped != extra {
		t.Errorf("stats %+v: want %d in, %d out, %d dropped", st, ceiling+extra, ceiling, extra)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Errorf("a dropped datagram was answered: %q", buf[:n])
	}
}

// TestUDPHandlerBeforeEcho checks that the handler runs before the echo: with Block set, no reply
// comes back sooner than Block after its datagram left.
func TestUDPHandlerBeforeEcho(t *testing.T) {
	const block = 100 * time.Millisecond
	for _, pool := range []int{0, 1} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			srv := startUDP(t, server.Config{Pool: pool, Block: block})
			c := dialUDP(t, srv)
			sent := time.Now()
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			readReply(t, c, []byte("x"))
			if waited := time.Since(sent); waited < block {
				t.Errorf("echo after %v, before the handler's block of %v was over", waited, block)
			}
		})
	}
}

// TestUDPCloseLeavesNothing closes servers with threads asleep in recvfrom and datagram threads
// busy in the handler: Close must wake the first, wait for the second, whose replies still go
// out, and leave no goroutine, thread or fd behind.
func TestUDPCloseLeavesNothing(t *testing.T) {
	fdsBefore := countFDs(t)
	goroutinesBefore := runtime.NumGoroutine()
	for _, pool := range []int{0, 1, 8} {
		cfg := server.Config{Addr: "127.0.0.1:0", Pool: pool, Block: 300 * time.Millisecond, Logf: t.Logf}
		srv, err := StartUDP(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("in flight")); err != nil {
			t.Fatal(err)
		}
		modeltest.WaitFor(t, "the datagram to be read", func() bool { return srv.Stats().DatagramsIn == 1 })
		if err := srv.Close(); err != nil {
			t.Errorf("pool %d: close: %v", pool, err)
		}
		if st := srv.Stats(); st.DatagramsOut != 1 {
			t.Errorf("pool %d: the datagram being handled at Close was not answered: %+v", pool, st)
		}
		c.Close()
	}
	modeltest.WaitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutinesBefore })
	if after := countFDs(t); after != fdsBefore {
		t.Errorf("%d fds open before the servers, %d after they closed", fdsBefore, after)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	n, err := modeltest.CountFDs()
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	return n
}
