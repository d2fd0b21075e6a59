package sockutil

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRecvfromSendto echoes datagrams, an empty one and a largest one included, through the pair:
// each reply reaches the client it came from, byte for byte.
func TestRecvfromSendto(t *testing.T) {
	fd, addr, err := ListenUDP("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, MaxDatagram)
	reply := make([]byte, MaxDatagram+1)
	for _, size := range []int{0, 1, 1472, MaxDatagram - 20} { // 65507, IPv4's largest
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		var from Peer
		n, err := Recvfrom(fd, buf, &from)
		if err != nil || n != size || !from.Valid() {
			t.Fatalf("recvfrom of %d bytes: %d, %v, sender valid %v", size, n, err, from.Valid())
		}
		if sent, err := Sendto(fd, buf[:n], &from); err != nil || sent != n {
			t.Fatalf("sendto of %d bytes: %d, %v", n, sent, err)
		}
		got, err := c.Read(reply)
		if err != nil || !bytes.Equal(reply[:got], msg) {
			t.Fatalf("reply to %d bytes: %d bytes, %v", size, got, err)
		}
	}
}

// TestShutdownWakesRecvfrom checks what the blocking model's Close rests on: shutdown(2) of the
// reading side of an unconnected UDP socket fails with ENOTCONN, yet sets the shutdown and wakes
// a thread asleep in recvfrom(2), which returns 0 bytes and no sender, and does so again at once.
func TestShutdownWakesRecvfrom(t *testing.T) {
	fd, _, err := ListenUDP("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	type result struct {
		n     int
		valid bool
		err   error
	}
	woken := make(chan result, 2)
	for range 2 {
		go func() {
			var from Peer
			n, err := Recvfrom(fd, make([]byte, MaxDatagram), &from)
			woken <- result{n, from.Valid(), err}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them fall asleep; a late one returns at once all the same
	if err := unix.Shutdown(fd, unix.SHUT_RD); err != nil && !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("shutdown: %v", err)
	}
	for range 2 {
		select {
		case r := <-woken:
			if r.n != 0 || r.valid || r.err != nil {
				t.Errorf("recvfrom after shutdown: %d bytes, sender valid %v, %v; want 0, no sender, no error", r.n, r.valid, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("shutdown(SHUT_RD) did not wake a thread asleep in recvfrom")
		}
	}
}
