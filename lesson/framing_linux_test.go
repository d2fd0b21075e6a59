package lesson

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopbackPair is a connected TCP pair on 127.0.0.1.
func loopbackPair(t *testing.T) (client, served net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	served, err = ln.Accept()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); served.Close() })
	return client, served
}

// waitQueued waits until c's receive queue holds at least n bytes (FIONREAD), so that what a
// read returns depends on the stream and not on when the test happened to call it.
func waitQueued(t *testing.T, c net.Conn, n int) {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var queued int
		raw.Control(func(fd uintptr) { queued, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if err != nil {
			t.Fatalf("FIONREAD: %v", err)
		}
		if queued >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d bytes arrived", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNaiveReaderBreaksOnCoalescedMessages: two sends, one recv gets both (sticky packets).
func TestNaiveReaderBreaksOnCoalescedMessages(t *testing.T) {
	client, served := loopbackPair(t)
	for _, m := range []string{"hello", "world"} {
		if _, err := client.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitQueued(t, served, 10)
	got, err := NaiveRead(served, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "helloworld" {
		t.Fatalf("naive read got %q; want the two messages stuck together, %q", got, "helloworld")
	}
}

// TestNaiveReaderBreaksOnSplitMessage: one message larger than the recv, or arriving in two
// pieces, comes out of a naive reader cut short.
func TestNaiveReaderBreaksOnSplitMessage(t *testing.T) {
	client, served := loopbackPair(t)
	big := bytes.Repeat([]byte("x"), 100_000)
	go client.Write(big)
	waitQueued(t, served, 1024)
	got, err := NaiveRead(served, 1024) // the notes' recv(1024)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) >= len(big) {
		t.Fatalf("naive read got all %d bytes of a %d-byte message with a 1024-byte recv", len(got), len(big))
	}

	client2, served2 := loopbackPair(t)
	msg := []byte("one message, sent in two pieces")
	client2.Write(msg[:10])
	waitQueued(t, served2, 10)
	got, err = NaiveRead(served2, 1<<20) // a buffer large enough does not help
	if err != nil {
		t.Fatal(err)
	}
	client2.Write(msg[10:])
	if bytes.Equal(got, msg) {
		t.Fatalf("naive read got the whole message although only its first piece had arrived")
	}
}

// TestJSONHeaderReassemblesCoalescedAndSplit: the notes' JSON-header framing reads every message
// whole however the stream is cut: messages stuck together in one write, and one dribbled a few
// bytes at a time.
func TestJSONHeaderReassemblesCoalescedAndSplit(t *testing.T) {
	client, served := loopbackPair(t)
	bodies := [][]byte{[]byte("first"), {}, bytes.Repeat([]byte("y"), 70_000), []byte("last")}
	var stream []byte
	for _, b := range bodies {
		h, err := EncodeJSONHeader(JSONHeader{TotalSize: int64(len(b))})
		if err != nil {
			t.Fatal(err)
		}
		stream = append(append(stream, h...), b...)
	}
	go func() {
		client.Write(stream[:len(stream)/2]) // coalesced: many messages in one write
		for rest := stream[len(stream)/2:]; len(rest) > 0; {
			n := min(len(rest), 7) // split: a few bytes per write, cutting headers and bodies
			client.Write(rest[:n])
			rest = rest[n:]
		}
	}()
	for i, want := range bodies {
		h, got, err := ReadJSONMessage(served, 1<<20)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if h.TotalSize != int64(len(want)) || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes; want %d", i, len(got), len(want))
		}
	}
}

// TestStructHeaderStopsAt2GiB: the notes' struct 'i' header refuses a length of 2 GiB (000 line
// 4), and the JSON header carries one, its own length still a struct 'i'.
func TestStructHeaderStopsAt2GiB(t *testing.T) {
	if _, err := PackStructI(1<<31 - 1); err != nil {
		t.Fatalf("2 GiB − 1: %v", err)
	}
	if _, err := PackStructI(1 << 31); err == nil {
		t.Fatal("struct 'i' accepted a length of 2 GiB")
	}
	const fiveGiB = 5 << 30
	h, err := EncodeJSONHeader(JSONHeader{TotalSize: fiveGiB})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ReadJSONMessage(bytes.NewReader(h), 1<<20)
	if !errors.Is(err, ErrBodyTooLarge) || got.TotalSize != fiveGiB {
		t.Fatalf("5 GiB header read back as %d, %v; want the size and ErrBodyTooLarge from a 1 MiB reader", got.TotalSize, err)
	}
}
