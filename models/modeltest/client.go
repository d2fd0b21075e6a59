package modeltest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Pattern fills b with the bytes a client with the given id sends at offset off. Deriving every
// byte from (id, offset) makes each connection's stream distinct, so a byte delivered to the wrong
// connection or out of order is caught, and checking costs no stored copy.
func Pattern(b []byte, id, off int) {
	for i := range b {
		o := off + i
		b[i] = byte(o*31+id*17) ^ byte(o>>8) ^ byte(o>>16)
	}
}

// Verify returns an error naming the first byte of got that differs from the pattern.
func Verify(got []byte, id, off int) error {
	want := make([]byte, len(got))
	Pattern(want, id, off)
	if bytes.Equal(got, want) {
		return nil
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("conn %d: byte at offset %d is %#x, want %#x", id, off+i, got[i], want[i])
		}
	}
	return nil
}

// Dial connects to addr with the suite's deadline set.
func Dial(addr string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c.(*net.TCPConn), nil
}

// Echo sends size pattern bytes for client id on c while a second goroutine reads them back, and
// verifies every byte. Writing and reading at once is what a real client does; it also lets a
// message larger than every buffer on the path pass through a model that applies backpressure.
func Echo(c net.Conn, id, off, size int) error {
	c.SetDeadline(time.Now().Add(ioTimeout))
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; {
			n := min(len(buf), size-sent)
			Pattern(buf[:n], id, off+sent)
			if _, err := c.Write(buf[:n]); err != nil {
				werr <- fmt.Errorf("write at %d of %d: %w", sent, size, err)
				return
			}
			sent += n
		}
		werr <- nil
	}()
	rerr := ReadVerify(c, id, off, size)
	if err := <-werr; err != nil {
		return err
	}
	return rerr
}

// ReadVerify reads exactly size bytes from c and checks them against client id's pattern.
func ReadVerify(c net.Conn, id, off, size int) error {
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 64<<10)
	for got := 0; got < size; {
		n, err := c.Read(buf[:min(len(buf), size-got)])
		if n > 0 {
			if verr := Verify(buf[:n], id, off+got); verr != nil {
				return verr
			}
			got += n
		}
		if err != nil {
			return fmt.Errorf("read at %d of %d: %w", got, size, err)
		}
	}
	return nil
}

// HoldConns opens n connections to addr, keeps every one open, and echoes size verified bytes on
// each once all are connected. It returns the connections for the caller to close (they are also
// closed when the test ends). It is the body of the "thousands of connections" tests.
func HoldConns(t testing.TB, addr string, n, size int) []*net.TCPConn {
	t.Helper()
	conns := make([]*net.TCPConn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := Dial(addr)
		if err != nil {
			t.Fatalf("dial %d of %d: %v", i, n, err)
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 256) // bounds the client's own goroutines and buffers
	for i, c := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := Echo(c, i, 0, size); err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 5 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed to echo", failed, n)
	}
	return conns
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// CountFDs returns how many file descriptors this process has open.
func CountFDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

func countFDs(t testing.TB) int {
	n, err := CountFDs()
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	return n
}
