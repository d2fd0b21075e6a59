package modeltest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"echobench/internal/sockutil"
	"echobench/server"
)

// RunUDP runs the conformance suite of a model's UDP variant (server.Model.StartUDP): exact echo
// of every size one datagram can carry, the empty datagram included, each reply to its own
// sender; many flows at once; never more replies or bytes than were sent (an echo server must
// not amplify); counters that add up, a flood included (every datagram read is echoed or counted
// as dropped, none vanishes); and a Close that leaves no goroutine or file descriptor behind.
//
// Loopback UDP can drop a datagram when a socket's receive buffer is full, so the checks that
// send many at once resend what did not come back, and count a reply only once: a lost
// datagram is a property of UDP, a corrupted, duplicated or misdirected one is a bug.
func RunUDP(t *testing.T, model string, opts Options) {
	m, err := server.Lookup(model)
	if err != nil {
		t.Fatal(err)
	}
	if m.StartUDP == nil {
		t.Fatalf("model %s has no UDP variant", model)
	}
	if err := m.CheckAvailable(); err != nil {
		t.Skip(err)
	}
	cfg := opts.config()
	cfg.UDP = true

	t.Run("CloseLeavesNothing", func(t *testing.T) { testUDPClose(t, m, cfg) })
	t.Run("Shared", func(t *testing.T) {
		srv := Start(t, model, cfg)
		addr := srv.Addr().String()
		t.Run("Echo", func(t *testing.T) { testUDPEcho(t, addr) })
		t.Run("Concurrent", func(t *testing.T) { testUDPConcurrent(t, addr) })
		t.Run("NeverAmplifies", func(t *testing.T) { testUDPNoAmplify(t, addr) })
	})
	t.Run("Stats", func(t *testing.T) { testUDPStats(t, model, cfg) })
	t.Run("FloodIsCounted", func(t *testing.T) { testUDPFlood(t, model, cfg) })
}

// udpSizes are the payloads the echo check sends: empty (legal in UDP, and echoed), short, one
// Ethernet frame's worth (1,472 = 1,500 - 20 IPv4 - 8 UDP), and the largest an IPv4 datagram
// can carry.
var udpSizes = []int{0, 1, 12, 64, 1472, 9000, 65507}

// udpWait is how long a check waits for a reply before it resends.
const udpWait = 2 * time.Second

// DialUDP returns a UDP socket connected to addr, so that it receives only what addr sends.
func DialUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	// Room for a burst of replies, so the concurrent check loses as little as the kernel allows.
	c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// udpRoundTrip sends p and waits for its echo, resending up to three times; it fails on a
// reply that differs from p.
func udpRoundTrip(c *net.UDPConn, p []byte) error {
	buf := make([]byte, sockutil.MaxDatagram+1)
	for try := 0; try < 3; try++ {
		if _, err := c.Write(p); err != nil {
			return fmt.Errorf("send %d bytes: %w", len(p), err)
		}
		c.SetReadDeadline(time.Now().Add(udpWait))
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive the echo of %d bytes: %w", len(p), err)
		}
		if !bytes.Equal(buf[:n], p) {
			return fmt.Errorf("sent %d bytes, echo is %d bytes and differs", len(p), n)
		}
		return nil
	}
	return fmt.Errorf("no echo of %d bytes in 3 tries of %v", len(p), udpWait)
}

func testUDPEcho(t *testing.T, addr string) {
	c := DialUDP(t, addr)
	for i, size := range udpSizes {
		p := make([]byte, size)
		Pattern(p, i, 0)
		if err := udpRoundTrip(c, p); err != nil {
			t.Errorf("size %d: %v", size, err)
		}
	}
}

// testUDPConcurrent runs flows from their own sockets at once, each with a window of datagrams
// in flight, and checks that every flow gets its own datagrams back and nobody else's.
func testUDPConcurrent(t *testing.T, addr string) {
	const flows, perFlow, window, size = 50, 40, 4, 64
	var wg sync.WaitGroup
	errs := make(chan error, flows)
	for f := range flows {
		c := DialUDP(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := udpFlow(c, f, perFlow, window, size); err != nil {
				errs <- fmt.Errorf("flow %d: %w", f, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// udpFlow sends n datagrams of the given size, window at a time, each carrying its flow and
// index in the pattern, and waits for each window's echoes, resending the missing ones.
func udpFlow(c *net.UDPConn, flow, n, window, size int) error {
	buf := make([]byte, sockutil.MaxDatagram+1)
	for first := 0; first < n; first += window {
		pending := map[string]bool{}
		for i := first; i < min(first+window, n); i++ {
			p := make([]byte, size)
			Pattern(p, flow, i*size)
			pending[string(p)] = true
		}
		for try := 0; len(pending) > 0; try++ {
			if try == 3 {
				return fmt.Errorf("%d datagrams of window %d not echoed in 3 tries", len(pending), first/window)
			}
			for p := range pending {
				if _, err := c.Write([]byte(p)); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
			c.SetReadDeadline(time.Now().Add(udpWait))
			for len(pending) > 0 {
				n, err := c.Read(buf)
				if err != nil {
					break // a timeout: resend what is missing
				}
				if !pending[string(buf[:n])] {
					// A resend may bring a second echo of one already answered; anything else
					// is not ours.
					if !isPatternOf(buf[:n], flow, size) {
						return fmt.Errorf("a %d-byte reply that flow %d never sent", n, flow)
					}
					continue
				}
				delete(pending, string(buf[:n]))
			}
		}
	}
	return nil
}

// isPatternOf reports whether p is one of flow's datagrams of this size.
func isPatternOf(p []byte, flow, size int) bool {
	if len(p) != size {
		return false
	}
	for i := 0; i < 64; i++ {
		if Verify(p, flow, i*size) == nil {
			return true
		}
	}
	return false
}

// testUDPNoAmplify sends datagrams once each, with no resend, and checks that no more replies
// and no more bytes come back than were sent: an echo server that answered one datagram twice,
// or with more than it received, would be a reflection amplifier.
func testUDPNoAmplify(t *testing.T, addr string) {
	const n, size = 32, 100
	c := DialUDP(t, addr)
	for i := range n {
		p := make([]byte, size)
		Pattern(p, i, 0)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // paced, so that none is lost and every one is answered
	}
	replies, bytesBack := 0, 0
	buf := make([]byte, sockutil.MaxDatagram+1)
	for {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		got, err := c.Read(buf)
		if err != nil {
			break
		}
		replies++
		bytesBack += got
		if got != size {
			t.Errorf("a %d-byte reply to %d-byte datagrams", got, size)
		}
	}
	if replies > n || bytesBack > n*size {
		t.Errorf("sent %d datagrams (%d bytes), got %d replies (%d bytes) back", n, n*size, replies, bytesBack)
	}
	if replies < n/2 {
		t.Errorf("sent %d paced datagrams, got only %d replies", n, replies)
	}
}

// testUDPStats checks the server's counters after an exchange in which every datagram was
// echoed: as many datagrams and bytes in as out, none dropped, no connection counted.
func testUDPStats(t *testing.T, model string, cfg server.Config) {
	srv := Start(t, model, cfg)
	c := DialUDP(t, srv.Addr().String())
	var want server.Stats
	for i, size := range udpSizes {
		p := make([]byte, size)
		Pattern(p, i, 0)
		if err := udpRoundTrip(c, p); err != nil {
			t.Fatal(err)
		}
		want.DatagramsIn++
		want.BytesIn += uint64(size)
	}
	want.DatagramsOut, want.BytesOut = want.DatagramsIn, want.BytesIn
	// A resend in udpRoundTrip is a second datagram in; wait for the counts to settle, then
	// compare what must hold whatever the resends.
	var got server.Stats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = srv.Stats(); got.DatagramsIn == got.DatagramsOut+got.Dropped && got.DatagramsIn >= want.DatagramsIn {
			break
		}
	}
	if got.DatagramsIn < want.DatagramsIn || got.BytesIn < want.BytesIn {
		t.Errorf("server counted %d datagrams, %d bytes in; at least %d, %d were echoed", got.DatagramsIn, got.BytesIn, want.DatagramsIn, want.BytesIn)
	}
	if got.DatagramsOut != got.DatagramsIn-got.Dropped || got.BytesOut > got.BytesIn {
		t.Errorf("server counted %+v: out must be in minus dropped, and never more bytes out than in", got)
	}
	if got.Accepted != 0 || got.Active != 0 {
		t.Errorf("server counted %d accepted, %d active connections over UDP", got.Accepted, got.Active)
	}
}

// testUDPFlood sends more datagrams than the server's socket, its reply queue and the client's
// socket can hold, without reading, then checks that the server accounted for every datagram it
// read (echoed or dropped), stayed within its bounds, and still serves a new client.
func testUDPFlood(t *testing.T, model string, cfg server.Config) {
	srv := Start(t, model, cfg)
	addr := srv.Addr().String()
	flood := DialUDP(t, addr)
	flood.SetReadBuffer(1) // the kernel's minimum: most echoes to it are dropped by its own socket
	p := make([]byte, 1024)
	sent := 0
	for i := range 20000 {
		Pattern(p, i, 0)
		if _, err := flood.Write(p); err != nil {
			// ECONNREFUSED would mean the server is gone; ENOBUFS or EAGAIN is the local
			// queue being full, which a flood is meant to reach.
			if errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("after %d datagrams: %v", i, err)
			}
			continue
		}
		sent++
	}
	var st server.Stats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st = srv.Stats(); st.DatagramsIn == st.DatagramsOut+st.Dropped {
			break
		}
	}
	if st.DatagramsIn != st.DatagramsOut+st.Dropped {
		t.Errorf("after a flood of %d datagrams the server read %d, echoed %d, dropped %d: %d unaccounted for", sent, st.DatagramsIn, st.DatagramsOut, st.Dropped, st.DatagramsIn-st.DatagramsOut-st.Dropped)
	}
	if st.DatagramsIn > uint64(sent) {
		t.Errorf("the server read %d datagrams; only %d were sent", st.DatagramsIn, sent)
	}
	t.Logf("flood: %d sent, server read %d, echoed %d, dropped %d", sent, st.DatagramsIn, st.DatagramsOut, st.Dropped)
	if err := udpRoundTrip(DialUDP(t, addr), []byte("after the flood")); err != nil {
		t.Errorf("a new client after the flood: %v", err)
	}
}

// testUDPClose exchanges datagrams with several clients, closes the server, and checks that
// Close returns, the port no longer answers, and no goroutine or file descriptor is left.
func testUDPClose(t *testing.T, m server.Model, cfg server.Config) {
	if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		c.Close() // warm up the test process's netpoller so its fds are in the baseline
	}
	time.Sleep(50 * time.Millisecond)
	fdsBefore := countFDs(t)
	goroutinesBefore := runtime.NumGoroutine()

	srv, err := m.Launch(cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	addr := srv.Addr().String()
	var clients []*net.UDPConn
	for i := range 8 {
		ua, _ := net.ResolveUDPAddr("udp", addr)
		c, err := net.DialUDP("udp", nil, ua)
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		clients = append(clients, c)
		if err := udpRoundTrip(c, []byte(fmt.Sprintf("client %d", i))); err != nil {
			srv.Close()
			t.Fatal(err)
		}
	}
	closeChecked(t, srv)
	// A connected UDP socket learns of a closed port from the ICMP port-unreachable its next
	// datagram draws, as ECONNREFUSED; an answer would mean the socket is still open.
	c := clients[0]
	c.Write([]byte("anyone?"))
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("a %d-byte answer after Close: the socket is still open", n)
	}
	for _, c := range clients {
		c.Close()
	}
	nothingLeft(t, fdsBefore, goroutinesBefore)
}
