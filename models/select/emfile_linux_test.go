package selectmodel_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"
)

// emfileServerEnv asks the test binary to be TestEMFILEServer's server process; its value is the
// number of fds the server may open for connections.
const emfileServerEnv = "SELECTMODEL_EMFILE_SLOTS"

// TestEMFILEServer is not a test on its own: TestAcceptEMFILE re-executes the test binary to run
// it, so that lowering RLIMIT_NOFILE starves the server of fds without starving its clients.
// It prints the address, serves until stdin closes, then prints its counters.
func TestEMFILEServer(t *testing.T) {
	slots, err := strconv.Atoi(os.Getenv(emfileServerEnv))
	if err != nil {
		t.Skip("the server process of TestAcceptEMFILE")
	}
	m, err := server.Lookup("select")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := m.Start(server.Config{
		Addr: "127.0.0.1:0",
		Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every fd below the lowest free one is open, so a limit of lowest+slots leaves exactly
	// slots fds for accepted connections.
	lowest, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(lowest)
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = uint64(lowest + slots)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	fmt.Println(srv.Addr())
	io.Copy(io.Discard, os.Stdin)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	fmt.Printf("stats accepted=%d rejected=%d active=%d\n", st.Accepted, st.Rejected, st.Active)
}

// TestAcceptEMFILE runs a server that can hold 4 connections and sends it 8: the other 4 wait in
// the backlog while accept fails with EMFILE, and are served as the first ones close. The server
// must not spin meanwhile, and logs the burst once.
func TestAcceptEMFILE(t *testing.T) {
	const slots, clients = 4, 8
	cmd := exec.Command(os.Args[0], "-test.run=^TestEMFILEServer$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", emfileServerEnv, slots))
	stdin, err := cmd.StdinPipe()
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
	var log logRecorder
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.logf("%s", sc.Text())
		}
	}()
	out := bufio.NewScanner(stdout)
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	var addr string
	for out.Scan() {
		if line := out.Text(); strings.HasPrefix(line, "127.0.0.1:") {
			addr = line
			break
		}
	}
	if addr == "" {
		t.Fatalf("the server process printed no address; stderr: %q", log.matching(""))
	}

	conns := make([]*net.TCPConn, clients)
	echoed := make(chan int, clients)
	for i := range conns {
		c, err := modeltest.Dial(addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		conns[i] = c
		go func() {
			if err := modeltest.Echo(c, i, 0, 100); err != nil {
				t.Errorf("conn %d: %v", i, err)
				echoed <- -1
				return
			}
			echoed <- i
		}()
	}
	waitFor(t, "the server to log EMFILE", func() bool { return len(log.matching("too many open files")) > 0 })

	// With clients waiting in the backlog and no fd to take them, the loop must sleep in select
	// between retries. An idle loop uses next to no CPU; a spinning one uses a whole core.
	cpuBefore := cpuTime(t, cmd.Process.Pid)
	window := time.Second
	time.Sleep(window)
	if used := cpuTime(t, cmd.Process.Pid) - cpuBefore; used > window/2 {
		t.Errorf("the server used %v of CPU in %v while accept failed with EMFILE: it spins", used, window)
	} else {
		t.Logf("the server used %v of CPU in %v while accept failed with EMFILE", used, window)
	}

	// Each served client that closes frees an fd, which lets one waiting client in.
	for done := 0; done < clients; done++ {
		i := <-echoed
		if i < 0 {
			t.FailNow()
		}
		conns[i].Close()
	}

	stdin.Close()
	var stats string
	for out.Scan() {
		if line := out.Text(); strings.HasPrefix(line, "stats ") {
			stats = line
		}
	}
	<-stderrDone
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("server process: %v; stderr: %q", err, log.matching(""))
	}
	if want := fmt.Sprintf("stats accepted=%d rejected=0 active=0", clients); stats != want {
		t.Errorf("server process printed %q, want %q", stats, want)
	}
	if lines := log.matching("too many open files"); len(lines) != 1 {
		t.Errorf("one EMFILE burst logged %d times, want once: %q", len(lines), lines)
	} else {
		t.Logf("server log: %s", lines[0])
	}
}

// cpuTime is the user plus system CPU time process pid has used so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading the server's CPU time: %v", err)
	}
	// Fields 14 and 15 (utime, stime) follow the parenthesised command name, which may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(utime+stime) * time.Second / clockTicks
}
