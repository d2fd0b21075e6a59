package sockutil

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recvAtLeast calls d.Recv on fd until it has taken want datagrams in all, handing each batch to
// got, or fails the test after 10 s. EAGAIN only means the next datagram is not there yet.
func recvAtLeast(t *testing.T, d *Datagrams, fd, want int, got func(n int)) {
	t.Helper()
	for taken, deadline := 0, time.Now().Add(10*time.Second); taken < want; {
		n, err := d.Recv(fd)
		if errors.Is(err, unix.EAGAIN) {
			if time.Now().After(deadline) {
				t.Fatalf("received %d of %d datagrams", taken, want)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("recvmmsg: %v", err)
		}
		if n < 1 || n > d.Cap() {
			t.Fatalf("Recv took %d datagrams into a batch of %d", n, d.Cap())
		}
		got(n)
		taken += n
	}
}

// TestDatagramsSendBack reads datagrams from two clients in batches smaller than what they sent,
// sends each batch back, and checks that every client gets exactly its own datagrams back, empty
// and largest ones included. The sizes grow, so a slot that held a short reply must take a long
// datagram next.
func TestDatagramsSendBack(t *testing.T) {
	fd, addr, err := ListenUDP("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sizes := []int{0, 1, 64, 1472, 65507} // 65,507: the most one IPv4 datagram carries
	var clients []*net.UDPConn
	for range 2 {
		c, err := net.DialUDP("udp", nil, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Room for every reply: the largest alone is above some systems' default.
		if err := c.SetReadBuffer(1 << 20); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	message := func(client, size int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(client*31 + size + i)
		}
		return b
	}
	d := NewDatagrams(3)
	for _, size := range sizes {
		for i, c := range clients {
			if _, err := c.Write(message(i, size)); err != nil {
				t.Fatal(err)
			}
		}
		recvAtLeast(t, d, fd, len(clients), func(n int) {
			for sent := 0; sent < n; {
				k, err := d.SendBack(fd, sent, n)
				if err != nil {
					t.Fatalf("sendmmsg: %v", err)
				}
				sent += k
			}
		})
	}
	buf := make([]byte, MaxDatagram+1)
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for _, size := range sizes {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("client %d, reply to %d bytes: %v", i, size, err)
			}
			if !bytes.Equal(buf[:n], message(i, size)) {
				t.Fatalf("client %d got %d bytes back for its %d-byte datagram, not the same bytes", i, n, size)
			}
		}
	}
}

// unixPair returns a connected pair of AF_UNIX datagram sockets. Unlike UDP over loopback, a
// unix datagram socket pushes back: a send fails with EAGAIN while its peer's receive queue is
// full, which is how the tests below reach the paths that a full send buffer takes.
func unixPair(t *testing.T) (server, client int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// TestReplyQueue fills a queue from a peer that does not read, checks the bound, then lets the
// peer read and checks that what was held arrives, in order, byte for byte.
func TestReplyQueue(t *testing.T) {
	server, client := unixPair(t)
	d := NewDatagrams(1)
	q := NewReplyQueue(8, ReplyQueueLimit)
	held := 0
	for ; ; held++ {
		msg := fmt.Appendf(nil, "reply %d", held)
		if _, err := unix.Write(client, msg); err != nil {
			t.Fatal(err)
		}
		recvAtLeast(t, d, server, 1, func(int) {})
		if !bytes.Equal(d.Payload(0), msg) {
			t.Fatalf("received %q, want %q", d.Payload(0), msg)
		}
		if !q.Hold(d, 0) {
			break
		}
	}
	if held != ReplyQueueLimit || q.Len() != ReplyQueueLimit {
		t.Fatalf("the queue held %d replies (Len %d), want ReplyQueueLimit (%d)", held, q.Len(), ReplyQueueLimit)
	}

	// The client does not read: Send goes on until its receive queue is full, then says EAGAIN
	// and keeps the rest.
	var sentSizes []int
	record := func(size int) { sentSizes = append(sentSizes, size) }
	for {
		_, err := q.Send(server, record)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatalf("sendmmsg: %v", err)
		}
		if q.Len() == 0 {
			t.Fatal("a peer that never reads took all of ReplyQueueLimit replies; this test needs its receive queue to fill first")
		}
	}
	if len(sentSizes)+q.Len() != ReplyQueueLimit {
		t.Fatalf("%d sent + %d held, want %d", len(sentSizes), q.Len(), ReplyQueueLimit)
	}

	// The client reads everything as it comes; the queue drains, and every reply is the datagram
	// that was held, in order.
	buf := make([]byte, 64)
	for next, deadline := 0, time.Now().Add(10*time.Second); next < ReplyQueueLimit; {
		n, err := unix.Read(client, buf)
		if errors.Is(err, unix.EAGAIN) {
			if time.Now().After(deadline) {
				t.Fatalf("the peer read %d of %d replies; %d still held", next, ReplyQueueLimit, q.Len())
			}
			if _, err := q.Send(server, record); err != nil && !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("sendmmsg: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("reply %d", next); string(buf[:n]) != want {
			t.Fatalf("reply %d reads %q, want %q", next, buf[:n], want)
		}
		next++
	}
	if q.Len() != 0 || len(sentSizes) != ReplyQueueLimit {
		t.Fatalf("after the peer read all: %d held, %d counted sent", q.Len(), len(sentSizes))
	}
	if want := len("reply 0"); sentSizes[0] != want {
		t.Errorf("the first reply was counted as %d bytes, want %d", sentSizes[0], want)
	}
}

// TestReplyQueueDrop checks that Drop takes the head away unsent and that an empty datagram is
// held and sent as an empty datagram.
func TestReplyQueueDrop(t *testing.T) {
	server, client := unixPair(t)
	d := NewDatagrams(2)
	q := NewReplyQueue(4, 2)
	for _, msg := range []string{"dropped", ""} {
		if _, err := unix.Write(client, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	recvAtLeast(t, d, server, 2, func(n int) {
		for i := range n {
			q.Hold(d, i)
		}
	})
	q.Drop()
	if n, err := q.Send(server, func(size int) {
		if size != 0 {
			t.Errorf("the empty reply was counted as %d bytes", size)
		}
	}); n != 1 || err != nil {
		t.Fatalf("Send: %d sent, %v", n, err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Read(client, buf); err != nil || n != 0 {
		t.Fatalf("read %d bytes (%v), want the empty datagram", n, err)
	}
	q.Drop() // on an empty queue: nothing happens
	if q.Len() != 0 {
		t.Fatalf("Len %d after draining", q.Len())
	}
}

// TestListenUDPGroup checks that the sockets share one port and that together they receive what
// clients send to it.
func TestListenUDPGroup(t *testing.T) {
	fds, addr, err := ListenUDPGroup("127.0.0.1:0", 3, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if len(fds) != 3 {
		t.Fatalf("%d sockets, want 3", len(fds))
	}
	for _, fd := range fds {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		if got := TCPAddrOf(sa); got.Port != addr.Port {
			t.Errorf("fd %d is bound to port %d, the group to %d", fd, got.Port, addr.Port)
		}
		if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT); err != nil || on != 1 {
			t.Errorf("fd %d: SO_REUSEPORT %d (%v), want on", fd, on, err)
		}
	}
	const clients = 16
	for i := range clients {
		c, err := net.DialUDP("udp", nil, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	d := NewDatagrams(clients)
	seen := map[byte]bool{}
	for deadline := time.Now().Add(10 * time.Second); len(seen) < clients; {
		for _, fd := range fds {
			n, err := d.Recv(fd)
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				t.Fatal(err)
			}
			for i := range n {
				seen[d.Payload(i)[0]] = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group received datagrams from %d of %d clients", len(seen), clients)
		}
		time.Sleep(time.Millisecond)
	}
}
