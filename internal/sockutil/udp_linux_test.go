package sockutil

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestListenUDP checks that the socket is bound to the port the kernel picked and receives what a
// client sends to that address, an empty datagram included.
func TestListenUDP(t *testing.T) {
	fd, addr, err := ListenUDP("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if addr.Port == 0 || !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("bound to %v, want 127.0.0.1 and a port", addr)
	}
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxDatagram)
	for _, msg := range []string{"", "hello"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("recvfrom: %v", err)
		}
		if string(buf[:n]) != msg || TCPAddrOf(from).Port != c.LocalAddr().(*net.UDPAddr).Port {
			t.Errorf("got %q from %v, want %q from %v", buf[:n], from, msg, c.LocalAddr())
		}
	}
}
