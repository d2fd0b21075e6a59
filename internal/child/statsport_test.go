package child

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"echobench/internal/reexec"
)

// statsChild is an echoserver process with a stats port, read the way a parent reads one.
type statsChild struct {
	cmd       *exec.Cmd
	lines     *bufio.Scanner // stdout after the address line
	addr      string
	statsAddr string
}

func startStatsChild(t *testing.T, args ...string) *statsChild {
	t.Helper()
	cmd, err := reexec.Command(RoleServer, append(args, "-addr", "127.0.0.1:0", "-stats-addr", "127.0.0.1:0")...)
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &statsChild{cmd: cmd, lines: bufio.NewScanner(stdout)}
	errLines := bufio.NewScanner(stderr)
	for errLines.Scan() {
		if a, ok := strings.CutPrefix(errLines.Text(), "echoserver: stats on "); ok {
			c.statsAddr = a
			break
		}
	}
	go io.Copy(io.Discard, stderr) // the rest, so the child never blocks on a full pipe
	if c.statsAddr == "" {
		t.Fatal("no \"stats on\" line on stderr")
	}
	if !c.lines.Scan() {
		t.Fatal("no address line")
	}
	if c.addr, err = ParseAddr(c.lines.Text()); err != nil {
		t.Fatal(err)
	}
	return c
}

// sigusr1 asks for a stats line and reads it.
func (c *statsChild) sigusr1(t *testing.T) Snapshot {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGUSR1)
	if !c.lines.Scan() {
		t.Fatal("no stats line")
	}
	s, ok := ParseSnapshot(c.lines.Text())
	if !ok {
		t.Fatalf("line %q is not a stats line", c.lines.Text())
	}
	return s
}

func (c *statsChild) fetch(t *testing.T) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := FetchSnapshot(ctx, http.DefaultClient, c.statsAddr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// echo sends n bytes over conn in chunks and reads them all back.
func echo(t *testing.T, conn net.Conn, n int) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	chunk := bytes.Repeat([]byte("e"), min(n, 64<<10))
	back := make([]byte, len(chunk))
	for sent := 0; sent < n; sent += len(chunk) {
		part := chunk[:min(len(chunk), n-sent)]
		if _, err := conn.Write(part); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, back[:len(part)]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatsPortMatchesStatsLine checks that GET /stats answers with the stats line's own JSON:
// after a known exchange its byte counters equal the SIGUSR1 line's and the exchange, and other
// paths and methods are refused.
func TestStatsPortMatchesStatsLine(t *testing.T) {
	c := startStatsChild(t, "-model", "stdnet")
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 12345
	echo(t, conn, n)

	resp, err := http.Get("http://" + c.statsAddr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasSuffix(body, []byte("}\n")) || bytes.Count(body, []byte("\n")) != 1 {
		t.Fatalf("GET /stats: %s %q, want 200 and one JSON object ending in a newline", resp.Status, body)
	}
	port, ok := ParseSnapshot(statsPrefix + string(body))
	if !ok {
		t.Fatalf("GET /stats: %q does not parse as a snapshot", body)
	}
	line := c.sigusr1(t)
	if port.BytesIn != n || port.BytesOut != n || line.BytesIn != port.BytesIn || line.BytesOut != port.BytesOut || line.Accepted != 1 || port.Accepted != 1 {
		t.Errorf("after echoing %d bytes: stats port %+v, stats line %+v; want both %d in and out, 1 accepted", n, port.Stats, line.Stats, n)
	}
	if port.Process == nil || line.Process == nil {
		t.Fatalf("no process accounting: port %+v, line %+v", port.Process, line.Process)
	}
	if p, l := port.Process, line.Process; p.PID != c.cmd.Process.Pid || l.PID != p.PID || !l.Started.Equal(p.Started) || l.Time.Before(p.Time) || p.Threads < 1 || p.RSSBytes == 0 || p.RootHWMBytes < p.RSSBytes/2 {
		t.Errorf("process accounting: port %+v, line %+v; want pid %d in both, one start time, the line no earlier, threads and RSS", p, l, c.cmd.Process.Pid)
	}
	for _, req := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/stats/x"}, {"GET", "/metrics"}, {"POST", "/stats"}} {
		r, _ := http.NewRequest(req.method, "http://"+c.statsAddr+req.path, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %s, want 404 (or 405 for another method on /stats)", req.method, req.path, resp.Status)
		}
	}
	// At exit the port is closed with everything else.
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", c.statsAddr, time.Second); err == nil {
		conn.Close()
		t.Error("the stats port still accepts after the server exited")
	}
}

// TestStatsLineAccountsTree checks the process tree in the stats line with the process model,
// which forks a child per connection: the children count, and CPU grows under load.
func TestStatsLineAccountsTree(t *testing.T) {
	c := startStatsChild(t, "-model", "process")
	before := c.sigusr1(t)
	var conns []net.Conn
	for range 2 {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		echo(t, conn, 1) // the child for it is up once it has echoed
		conns = append(conns, conn)
	}
	// CPU time in /proc is counted in scheduler ticks (4 ms at HZ 250), and 64 MiB echoes in
	// about 30 ms here: a run can fall between the children's ticks. So the load goes on, 64 MiB
	// a round, until the tree's CPU has grown, for at most ten rounds.
	var after Snapshot
	for round := 0; ; round++ {
		for _, conn := range conns {
			echo(t, conn, 32<<20)
		}
		after = c.fetch(t)
		if round == 9 || after.Process == nil || before.Process == nil ||
			after.Process.UserS+after.Process.SysS > before.Process.UserS+before.Process.SysS {
			break
		}
	}
	if before.Process == nil || after.Process == nil {
		t.Fatalf("no process accounting: before %+v, after %+v", before.Process, after.Process)
	}
	b, a := before.Process, after.Process
	if a.Processes < b.Processes+2 {
		t.Errorf("processes %d before two connections, %d with them: want the two children counted", b.Processes, a.Processes)
	}
	if a.UserS+a.SysS <= b.UserS+b.SysS || !a.Time.After(b.Time) {
		t.Errorf("CPU %.3fs at %v before echoing up to 640 MiB, %.3fs at %v after: want it to grow", b.UserS+b.SysS, b.Time, a.UserS+a.SysS, a.Time)
	}
}

// TestStatsAddrLoopbackOnly checks that the stats port refuses an address off this host in one
// line, -allow-remote or not, before anything listens.
func TestStatsAddrLoopbackOnly(t *testing.T) {
	for _, args := range [][]string{
		{"-model", "stdnet", "-stats-addr", "0.0.0.0:0"},
		{"-model", "stdnet", "-stats-addr", ":9101"},
		{"-model", "stdnet", "-stats-addr", "198.18.0.1:9101", "-allow-remote"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if msg := stderr.String(); !strings.Contains(msg, "not a loopback address") || !strings.Contains(msg, "-allow-remote does not open it") || strings.Count(msg, "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%q: stdout %q, stderr %q: want one line saying why, and no address", args, stdout.String(), msg)
		}
	}
}
