package loadgen

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// udpTestServer is a UDP echo server that misbehaves as its handler says: the handler gets the
// index of every datagram it receives (over all flows) and decides what goes back, and when.
type udpTestServer struct {
	conn     *net.UDPConn
	received atomic.Uint64
	sent     atomic.Uint64
	wg       sync.WaitGroup
}

// udpHandler answers datagram i (b is its own copy) through reply, zero or more times.
type udpHandler func(i uint64, b []byte, from *net.UDPAddr, reply func(b []byte))

func echoAll(_ uint64, b []byte, _ *net.UDPAddr, reply func([]byte)) { reply(b) }

func startUDPServer(t *testing.T, h udpHandler) *udpTestServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// The engine's flows burst; the kernel's default buffer would drop some of a burst and turn
	// a test of one fault into a test of two. (net.core.rmem_max may cap it, so the loads below
	// also keep their windows' bytes well under the default buffer.)
	c.SetReadBuffer(4 << 20)
	s := &udpTestServer{conn: c}
	s.wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return // closed
			}
			i := s.received.Add(1) - 1
			h(i, append([]byte(nil), buf[:n]...), from, func(b []byte) {
				if _, err := c.WriteToUDP(b, from); err == nil {
					s.sent.Add(1)
				}
			})
		}
	})
	t.Cleanup(func() {
		c.Close()
		s.wg.Wait()
	})
	return s
}

func (s *udpTestServer) addr() string { return s.conn.LocalAddr().String() }

// runUDPChecked runs a short UDP load against addr and checks that it left no descriptor behind.
func runUDPChecked(t *testing.T, addr string, cfg Config) (*Result, error) {
	t.Helper()
	cfg.Addr, cfg.UDP = addr, true
	if cfg.Conns == 0 {
		cfg.Conns = 4
	}
	if cfg.Duration == 0 {
		cfg.Duration = 300 * time.Millisecond
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 50 * time.Millisecond
	}
	if cfg.UDPTimeout == 0 {
		// Long enough that a correct server stalled by the race detector or a busy machine is
		// not taken for a lossy one; tests of loss set a short one, and the drain of a run with
		// nothing in flight ends at once whatever the timeout.
		cfg.UDPTimeout = time.Second
	}
	cfg.Verify = true
	before := countFDs(t)
	res, err := Run(context.Background(), cfg)
	if after := countFDs(t); after > before {
		t.Errorf("Run leaked %d descriptors", after-before)
	}
	if res == nil {
		t.Fatalf("Run returned no result (err %v)", err)
	}
	return res, err
}

// checkFates checks the cohort's bookkeeping: every datagram sent in the window was echoed, timed
// out, or answered by a corrupted echo, and nothing was counted twice.
func checkFates(t *testing.T, res *Result) {
	t.Helper()
	if res.DatagramsSent == 0 || res.Messages == 0 {
		t.Fatalf("%d datagrams sent, %d echoes in the window: nothing measured", res.DatagramsSent, res.Messages)
	}
	if res.DatagramsEchoed+res.TimedOut > res.DatagramsSent || res.DatagramsSent-res.DatagramsEchoed-res.TimedOut > res.Corrupted+res.VerifyFailuresTotal {
		t.Errorf("sent %d = echoed %d + timed out %d + corrupted (%d) does not hold", res.DatagramsSent, res.DatagramsEchoed, res.TimedOut, res.Corrupted)
	}
	if res.Late > res.TimedOut || res.Lost != res.TimedOut-res.Late {
		t.Errorf("late %d, lost %d of %d timed out", res.Late, res.Lost, res.TimedOut)
	}
	if res.TotalDatagramsSent < res.DatagramsSent || res.Latency.TotalCount() != int64(res.Messages) {
		t.Errorf("%d sent in all, %d in the window; %d latencies of %d echoes", res.TotalDatagramsSent, res.DatagramsSent, res.Latency.TotalCount(), res.Messages)
	}
}

func TestUDPCleanServer(t *testing.T) {
	s := startUDPServer(t, echoAll)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"pingpong", Config{Sizes: []int{64}}},
		{"window and sizes", Config{Sizes: []int{12, 100, 1472, 4000}, Pipeline: 4, Workers: 2}},
		{"open loop", Config{Sizes: []int{64}, Pipeline: 2, Rate: 2000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := runUDPChecked(t, s.addr(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkFates(t, res)
			if res.TimedOut != 0 || res.Duplicated != 0 || res.Reordered != 0 || res.Corrupted != 0 || res.VerifyFailuresTotal != 0 || res.Unmatched {
				t.Errorf("against a correct server: %+v", res)
			}
			if res.DatagramsEchoed != res.DatagramsSent {
				t.Errorf("%d echoed of %d sent", res.DatagramsEchoed, res.DatagramsSent)
			}
			// The drain waits for everything in flight, so everything sent came back.
			if res.TotalDatagramsSent != res.TotalDatagramsReceived || res.TotalSent != res.TotalReceived {
				t.Errorf("whole run: %d datagrams (%d bytes) sent, %d (%d) received", res.TotalDatagramsSent, res.TotalSent, res.TotalDatagramsReceived, res.TotalReceived)
			}
			if got := s.received.Load(); got < res.TotalDatagramsSent {
				t.Errorf("the server received %d of %d", got, res.TotalDatagramsSent)
			}
			if (tc.cfg.Rate > 0) != (res.ScheduleLag != nil) {
				t.Errorf("schedule lag %v in a run at rate %d", res.ScheduleLag, tc.cfg.Rate)
			}
		})
	}
}

func TestUDPCountsDrops(t *testing.T) {
	const every = 10
	s := startUDPServer(t, func(i uint64, b []byte, from *net.UDPAddr, reply func([]byte)) {
		if i%every != every-1 {
			reply(b)
		}
	})
	cfg := Config{Sizes: []int{64}, Pipeline: 2, UDPTimeout: 50 * time.Millisecond}
	res, err := runUDPChecked(t, s.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkFates(t, res)
	// The server drops every tenth datagram it receives; the window's datagrams are consecutive
	// at the server but for those in flight across the window's two ends. (A stall of the test
	// server past the timeout would time out more, but their echoes come late: Lost holds.)
	slack := uint64(2*4*cfg.Pipeline + 2)
	want := res.DatagramsSent / every
	if res.Lost+slack < want || res.Lost > want+slack {
		t.Errorf("%d lost of %d sent; want %d ± %d", res.Lost, res.DatagramsSent, want, slack)
	}
	if res.Duplicated != 0 || res.Corrupted != 0 {
		t.Errorf("duplicated %d, corrupted %d", res.Duplicated, res.Corrupted)
	}
	if res.DatagramsEchoed+res.TimedOut != res.DatagramsSent {
		t.Errorf("%d echoed + %d timed out != %d sent", res.DatagramsEchoed, res.TimedOut, res.DatagramsSent)
	}
	if pct := res.LossPct(); pct < 5 || pct > 15 {
		t.Errorf("loss %.1f%%, want about 10", pct)
	}
}

func TestUDPCountsDuplicates(t *testing.T) {
	var dups atomic.Uint64
	s := startUDPServer(t, func(i uint64, b []byte, from *net.UDPAddr, reply func([]byte)) {
		reply(b)
		if i%7 == 0 {
			dups.Add(1)
			reply(b)
		}
	})
	res, err := runUDPChecked(t, s.addr(), Config{Sizes: []int{64}})
	if err != nil {
		t.Fatal(err)
	}
	checkFates(t, res)
	if res.Duplicated == 0 || res.Duplicated > dups.Load() {
		t.Errorf("%d duplicates counted; the server sent %d", res.Duplicated, dups.Load())
	}
	if res.TimedOut != 0 || res.Late != 0 || res.Corrupted != 0 || res.DatagramsEchoed != res.DatagramsSent {
		t.Errorf("timed out %d, late %d, corrupted %d, echoed %d of %d", res.TimedOut, res.Late, res.Corrupted, res.DatagramsEchoed, res.DatagramsSent)
	}
}

func TestUDPCountsReordering(t *testing.T) {
	// Every fifth datagram of a flow is held back and sent after the flow's next one.
	var mu sync.Mutex
	held := map[string][]byte{}
	var swapped atomic.Uint64
	s := startUDPServer(t, func(i uint64, b []byte, from *net.UDPAddr, reply func([]byte)) {
		mu.Lock()
		defer mu.Unlock()
		key := from.String()
		if h, ok := held[key]; ok {
			delete(held, key)
			reply(b)
			reply(h)
			swapped.Add(1)
			return
		}
		if i%5 == 0 {
			held[key] = b
			return
		}
		reply(b)
	})
	res, err := runUDPChecked(t, s.addr(), Config{Sizes: []int{64}, Pipeline: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkFates(t, res)
	if res.Reordered == 0 || res.Reordered > swapped.Load() {
		t.Errorf("%d reordered counted; the server swapped %d", res.Reordered, swapped.Load())
	}
	if res.Duplicated != 0 || res.Corrupted != 0 {
		t.Errorf("duplicated %d, corrupted %d", res.Duplicated, res.Corrupted)
	}
}

func TestUDPCountsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		at      int  // the byte flipped
		orphan  bool // the header is hit: the echo names no datagram, which then times out
		timeout time.Duration
	}{
		{"body", 40, false, 0},
		{"header", 5, true, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var flipped atomic.Uint64
			s := startUDPServer(t, func(i uint64, b []byte, from *net.UDPAddr, reply func([]byte)) {
				if i%10 == 3 {
					b[tc.at] ^= 0x80
					flipped.Add(1)
				}
				reply(b)
			})
			res, err := runUDPChecked(t, s.addr(), Config{Sizes: []int{64}, UDPTimeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			checkFates(t, res)
			if res.Corrupted == 0 || res.VerifyFailures != res.Corrupted || res.VerifyFailuresTotal > flipped.Load() || res.VerifyFailuresTotal < res.Corrupted {
				t.Errorf("corrupted %d, verify failures %d (%d in all); the server flipped %d", res.Corrupted, res.VerifyFailures, res.VerifyFailuresTotal, flipped.Load())
			}
			if tc.orphan != (res.TimedOut > 0) {
				t.Errorf("%d timed out, with the %s hit", res.TimedOut, tc.name)
			}
			if res.Duplicated != 0 {
				t.Errorf("%d duplicates", res.Duplicated)
			}
		})
	}
}

func TestUDPCountsLateEchoesOnce(t *testing.T) {
	// Every tenth datagram comes back three timeouts late: it is lost once, then late, and
	// neither a duplicate nor an echo.
	const timeout = 20 * time.Millisecond
	var delayed sync.WaitGroup
	t.Cleanup(delayed.Wait)
	s := startUDPServer(t, func(i uint64, b []byte, from *net.UDPAddr, reply func([]byte)) {
		if i%10 == 9 {
			delayed.Go(func() {
				time.Sleep(3 * timeout)
				reply(b)
			})
			return
		}
		reply(b)
	})
	res, err := runUDPChecked(t, s.addr(), Config{Sizes: []int{64}, Pipeline: 2, UDPTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	checkFates(t, res)
	if res.TimedOut == 0 || res.Late == 0 || res.Duplicated != 0 || res.DatagramsEchoed+res.TimedOut != res.DatagramsSent {
		t.Errorf("timed out %d, late %d, lost %d, duplicated %d, echoed %d of %d", res.TimedOut, res.Late, res.Lost, res.Duplicated, res.DatagramsEchoed, res.DatagramsSent)
	}
}

func TestUDPEmptyDatagrams(t *testing.T) {
	s := startUDPServer(t, echoAll)
	res, err := runUDPChecked(t, s.addr(), Config{Sizes: []int{0}, Pipeline: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkFates(t, res)
	if !res.Unmatched || res.TotalSent != 0 || res.Bytes != 0 || res.TotalDatagramsReceived != res.TotalDatagramsSent || res.TimedOut != 0 || res.Corrupted != 0 {
		t.Errorf("unmatched %v, %d bytes sent, %d window bytes, %d of %d datagrams back, %d timed out, %d corrupted",
			res.Unmatched, res.TotalSent, res.Bytes, res.TotalDatagramsReceived, res.TotalDatagramsSent, res.TimedOut, res.Corrupted)
	}
}

func TestUDPRefusesOversizedDatagrams(t *testing.T) {
	if err := CheckUDPSize(MaxDatagramIPv4, true); err != nil {
		t.Errorf("%d bytes over IPv4: %v", MaxDatagramIPv4, err)
	}
	if err := CheckUDPSize(MaxDatagramIPv4+1, false); err != nil {
		t.Errorf("%d bytes over IPv6: %v", MaxDatagramIPv4+1, err)
	}
	for _, tc := range []struct {
		size int
		ipv4 bool
		want string
	}{{MaxDatagramIPv4 + 1, true, "65507"}, {MaxDatagramIPv6 + 1, false, "65527"}, {-1, true, "0 bytes or more"}} {
		if err := CheckUDPSize(tc.size, tc.ipv4); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("size %d (IPv4 %v): %v; want an error saying %s", tc.size, tc.ipv4, err, tc.want)
		}
	}
	_, err := Run(context.Background(), Config{Addr: "127.0.0.1:9", UDP: true, Conns: 1, Duration: time.Second, Sizes: []int{64, MaxDatagramIPv4 + 1}})
	if err == nil || !strings.Contains(err.Error(), "IPv4") {
		t.Errorf("Run with %d bytes to an IPv4 address: %v", MaxDatagramIPv4+1, err)
	}
}

func TestUDPLargestDatagram(t *testing.T) {
	s := startUDPServer(t, echoAll)
	res, err := runUDPChecked(t, s.addr(), Config{Sizes: []int{MaxDatagramIPv4}, Conns: 2, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkFates(t, res)
	if res.Corrupted != 0 || res.TimedOut != 0 {
		t.Errorf("corrupted %d, timed out %d", res.Corrupted, res.TimedOut)
	}
}

func TestUDPNoServer(t *testing.T) {
	// A port nobody listens on: every datagram draws an ICMP port-unreachable and times out.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	res, err := runUDPChecked(t, addr, Config{Sizes: []int{64}, Duration: 100 * time.Millisecond, UDPTimeout: 20 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "came back") {
		t.Errorf("Run against nothing: %v", err)
	}
	if res.DatagramsSent == 0 || res.TimedOut != res.DatagramsSent || res.Lost != res.TimedOut || res.Messages != 0 {
		t.Errorf("sent %d, timed out %d, lost %d, echoed %d", res.DatagramsSent, res.TimedOut, res.Lost, res.Messages)
	}
	if res.IOErrors["ECONNREFUSED"] == 0 {
		t.Errorf("no ECONNREFUSED counted: %v", res.IOErrors)
	}
}

func TestUDPRefusesTCPOptions(t *testing.T) {
	for _, cfg := range []Config{{Frame: true}, {Reconnect: 2}, {Sources: 4}} {
		cfg.Addr, cfg.UDP, cfg.Conns, cfg.Duration = "127.0.0.1:9", true, 1, time.Second
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "TCP's") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}
