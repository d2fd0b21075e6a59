package uring

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"echobench/internal/sockutil"
	"echobench/models/modeltest"
	"echobench/server"
)

// TestUDPConformance runs the shared UDP suite; it skips, with the reason, where io_uring is
// unavailable.
func TestUDPConformance(t *testing.T) {
	modeltest.RunUDP(t, "uring", modeltest.Options{})
}

// TestUDPConformanceSingleRecvmsg runs it the way a kernel without multishot recvmsg is served:
// single recvmsgs into buffers the loop picks, from the kernel's buffer ring left unused.
func TestUDPConformanceSingleRecvmsg(t *testing.T) {
	disableMultishotRecv = true
	t.Cleanup(func() { disableMultishotRecv = false })
	modeltest.RunUDP(t, "uring", modeltest.Options{})
}

// TestUDPConformanceNoBufRing runs it the way a kernel before 5.19 is served: no buffer ring, single
// recvmsgs into the loop's own mapping.
func TestUDPConformanceNoBufRing(t *testing.T) {
	disableBufRing = true
	t.Cleanup(func() { disableBufRing = false })
	modeltest.RunUDP(t, "uring", modeltest.Options{})
}

// TestUDPConformanceMultishotRefused has the kernel refuse every multishot recvmsg (EINVAL), as
// one before 6.0 does: each loop must say so and serve on with single recvmsgs.
func TestUDPConformanceMultishotRefused(t *testing.T) {
	refuseMultishotRecv = true
	t.Cleanup(func() { refuseMultishotRecv = false })
	logs := &modeltest.LogLines{T: t, Contains: "multishot recvmsg unsupported"}
	modeltest.RunUDP(t, "uring", modeltest.Options{Config: server.Config{Logf: logs.Logf}})
	if logs.Count() == 0 {
		t.Error("no loop reported the refused multishot recvmsg")
	}
}

// TestUDPConformanceOneBuffer runs it with one datagram buffer per loop: the multishot recvmsg
// ends with ENOBUFS at every datagram, while its echo holds the buffer, and must be armed again
// when the echo gives it back, without losing or mixing up datagrams.
func TestUDPConformanceOneBuffer(t *testing.T) {
	poolBuffers = 1
	t.Cleanup(func() { poolBuffers = bufCount })
	modeltest.RunUDP(t, "uring", modeltest.Options{Config: server.Config{Loops: 1}})
}

func TestUDPBuffersPerLoop(t *testing.T) {
	for _, c := range []struct {
		loops int
		want  uint16
	}{{1, udpBuffers}, {4, udpBuffers}, {8, 128}, {12, 64}, {2000, 1}} {
		if got := udpBuffersPerLoop(c.loops); got != c.want {
			t.Errorf("udpBuffersPerLoop(%d) = %d, want %d", c.loops, got, c.want)
		}
		if total := c.loops * int(udpBuffersPerLoop(c.loops)); total > sockutil.ReplyQueueLimit && c.loops <= sockutil.ReplyQueueLimit {
			t.Errorf("%d loops hold up to %d replies, past ReplyQueueLimit", c.loops, total)
		}
	}
}

// TestUDPHandlerInline checks that the handler runs on the loop before the echo: with one loop
// and Block set, a datagram sent while the loop handles another is answered only after both
// handlers have run, and no echo comes back sooner than Block after its datagram.
func TestUDPHandlerInline(t *testing.T) {
	const block = 100 * time.Millisecond
	srv := modeltest.Start(t, "uring", server.Config{UDP: true, Loops: 1, Block: block})
	c := modeltest.DialUDP(t, srv.Addr().String())
	sent := time.Now()
	for i := range 2 {
		if _, err := c.Write([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 16)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range 2 {
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], []byte(fmt.Sprint(i))) {
			t.Fatalf("echo %d: %q, %v", i, buf[:n], err)
		}
		// One loop runs one handler at a time: the second echo waits for both.
		if waited, want := time.Since(sent), time.Duration(i+1)*block; waited < want {
			t.Errorf("echo %d after %v, before %v of handlers on one loop", i, waited, want)
		}
	}
}

// TestUDPEchoIPv6 echoes over ::1, whose sender addresses fill the room kept for one.
func TestUDPEchoIPv6(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	srv := modeltest.Start(t, "uring", server.Config{UDP: true, Addr: "[::1]:0"})
	c := modeltest.DialUDP(t, srv.Addr().String())
	buf := make([]byte, sockutil.MaxDatagram+1)
	for _, size := range []int{0, 100, sockutil.MaxDatagram} {
		msg := bytes.Repeat([]byte{9}, size)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo of %d bytes over IPv6: %d bytes, %v", size, n, err)
		}
	}
}
