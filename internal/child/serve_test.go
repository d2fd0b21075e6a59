package child

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"echobench/internal/reexec"
	"echobench/server"
)

func TestUnknownModelExits2NamingModels(t *testing.T) {
	var stderr bytes.Buffer
	if code := Main([]string{"-model", "nope"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, name := range server.Names() {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("error does not name model %q: %s", name, stderr.String())
		}
	}
}

func TestBadFlagExits2(t *testing.T) {
	if code := Main([]string{"-no-such-flag"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}

func TestBusyPortExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, model := range server.Names() {
		m, _ := server.Lookup(model)
		if m.CheckAvailable() != nil {
			continue
		}
		var stderr bytes.Buffer
		code := Main([]string{"-model", model, "-addr", ln.Addr().String(), "-quiet"}, io.Discard, &stderr)
		if code != 1 {
			t.Errorf("-model %s on a busy port: exit %d, want 1; stderr: %s", model, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "address already in use") {
			t.Errorf("-model %s on a busy port: error does not say so: %s", model, stderr.String())
		}
	}
}

// TestSignalStopsCleanly runs the echoserver as a process: the first stdout line is the address,
// it echoes, SIGUSR1 prints its counters, and SIGTERM makes it close and exit 0 with final counts.
func TestSignalStopsCleanly(t *testing.T) {
	cmd, err := reexec.Command(RoleServer, "-model", "stdnet", "-addr", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatal("no address line")
	}
	addr, err := ParseAddr(lines.Text())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	if st := readStats(t, lines); st.BytesIn != 5 || st.Active != 1 {
		t.Errorf("SIGUSR1 stats %+v, want 5 bytes in and 1 active", st)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if st := readStats(t, lines); st.BytesOut != 5 || st.Active != 0 {
		t.Errorf("final stats %+v, want 5 bytes out and 0 active", st)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after the server exited")
	}
	c.Close()
}

// TestModelProcs checks when echoserver raises GOMAXPROCS for a model that asks (blocking, whose
// threads would otherwise queue for a single P): only upwards, and never against the user's
// GOMAXPROCS variable.
func TestModelProcs(t *testing.T) {
	blocking, err := server.Lookup("blocking")
	if err != nil {
		t.Fatal(err)
	}
	epoll, err := server.Lookup("epoll")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		m       server.Model
		cfg     server.Config
		env     string
		current int
		want    int
	}{
		{"thread per connection on one CPU", blocking, server.Config{}, "", 1, 128},
		{"a pool needs no more Ps than threads", blocking, server.Config{Pool: 4}, "", 1, 4},
		{"never lowered", blocking, server.Config{Pool: 4}, "", 8, 0},
		{"the user's GOMAXPROCS wins", blocking, server.Config{}, "1", 1, 0},
		{"a model that does not ask", epoll, server.Config{}, "", 1, 0},
	} {
		if got := raiseProcsTo(tc.m, tc.cfg, tc.env, tc.current); got != tc.want {
			t.Errorf("%s: raiseProcsTo = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func readStats(t *testing.T, lines *bufio.Scanner) server.Stats {
	t.Helper()
	if !lines.Scan() {
		t.Fatal("no stats line")
	}
	st, ok := ParseStats(lines.Text())
	if !ok {
		t.Fatalf("line %q is not a stats line", lines.Text())
	}
	return st
}

// TestRefusesWhatNoModelCanHonour checks that bad input exits 2 with one line that names the
// flag, and that a non-loopback address needs -allow-remote, before any socket is opened.
func TestRefusesWhatNoModelCanHonour(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"-model", "epoll", "-loops", "-3"}, "-loops is negative"},
		{[]string{"-model", "stdnet", "-block", "-1ms"}, "-block is negative"},
		{[]string{"-model", "stdnet", "-addr", "0.0.0.0:0"}, "-allow-remote"},
		{[]string{"-model", "stdnet", "-addr", ":0"}, "-allow-remote"},
		{[]string{"-model", "stdnet", "-addr", "192.0.2.1:7"}, "not a loopback address"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(c.args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", c.args, code)
		}
		if msg := stderr.String(); !strings.Contains(msg, c.says) || strings.Count(msg, "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%q: stdout %q, stderr %q: want one line saying %q and no address", c.args, stdout.String(), msg, c.says)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:0": true, "127.9.9.9:1": true, "[::1]:0": true, "localhost:0": true, "0.0.0.0:0": false, "[::]:0": false, ":0": false, "198.18.0.1:7": false} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
