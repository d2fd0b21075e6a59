package procstat

import (
	"io"
	"os"
	"os/exec"
	"testing"
)

func TestParseIO(t *testing.T) {
	text := "rchar: 123\nwchar: 456\nsyscr: 7\nsyscw: 8\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n"
	got, err := parseIO(1, []byte(text))
	if err != nil || got != (IO{RChar: 123, WChar: 456}) {
		t.Errorf("parseIO = %+v, %v; want rchar 123, wchar 456", got, err)
	}
	if _, err := parseIO(1, []byte("syscr: 7\n")); err == nil {
		t.Errorf("parseIO accepted a file without rchar and wchar")
	}
}

// TestTreeIOCountsPipeBytes moves a known number of bytes through a pipe with write(2) and
// read(2) and checks that this process's counters moved by at least that much; other reads and
// writes the runtime makes meanwhile can only add to them.
func TestTreeIOCountsPipeBytes(t *testing.T) {
	const n = 100_000
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := TreeIO(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.Write(make([]byte, n))
		w.Close()
	}()
	if got, err := io.Copy(io.Discard, r); err != nil || got != n {
		t.Fatalf("read %d bytes from the pipe (%v), want %d", got, err, n)
	}
	after, err := TreeIO(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.RChar-before.RChar < n || after.WChar-before.WChar < n {
		t.Errorf("counters moved by rchar %d, wchar %d; want at least %d each", after.RChar-before.RChar, after.WChar-before.WChar, n)
	}
}

// TestTreeIOReapedChild checks the property the tree sum relies on: a child's bytes stay
// counted once it has exited and been reaped, now in its parent's counters.
func TestTreeIOReapedChild(t *testing.T) {
	const n = 50_000
	before, err := TreeIO(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// head -c reads n bytes of zeros with read(2) and writes them with write(2).
	cmd := exec.Command("head", "-c", "50000", "/dev/zero")
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run head: %v", err)
	}
	after, err := TreeIO(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.RChar-before.RChar < n || after.WChar-before.WChar < n {
		t.Errorf("after reaping a child that moved %d bytes, counters moved by rchar %d, wchar %d", n, after.RChar-before.RChar, after.WChar-before.WChar)
	}
	if m := MaxIO(IO{1, 5}, IO{3, 2}); m != (IO{3, 5}) {
		t.Errorf("MaxIO = %+v, want {3 5}", m)
	}
}
