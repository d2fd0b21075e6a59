package modeltest

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"echobench/internal/reexec"
	_ "echobench/models/stdnet" // the model the child servers here serve
	"echobench/server"
)

func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

// TestChildArgsCarryOptions sets every option and checks that the child's flags give them all
// back: the Config through its own flags (server.Config.RegisterFlags, which its test checks
// field by field), the fd limits through the child's.
func TestChildArgsCarryOptions(t *testing.T) {
	want := ChildOptions{
		Model:  "stdnet",
		Config: server.Config{Loops: 3, Pool: 4, OutboundLimit: 5, ReusePort: true, LockOSThread: true},
		NoFile: 6, FDSlots: 7,
	}
	got := ChildOptions{Config: server.Config{}}
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	fs.StringVar(&got.Model, "model", "", "")
	fs.StringVar(&got.Config.Addr, "addr", "", "")
	got.Config.RegisterFlags(fs)
	fs.Uint64Var(&got.NoFile, "nofile", 0, "")
	fs.IntVar(&got.FDSlots, "fdslots", 0, "")
	if err := fs.Parse(want.launch(nil).CommandArgs()); err != nil {
		t.Fatal(err)
	}
	if got.Config.Addr != "127.0.0.1:0" {
		t.Errorf("the child listens on %q, want 127.0.0.1:0", got.Config.Addr)
	}
	got.Config.Addr = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the child gets %+v, want %+v", got, want)
	}
}

// TestChild runs a child server with a few fd slots, checks from outside that exactly that many fd
// numbers are free under its limit, echoes through it, and checks the counters Stop returns.
func TestChild(t *testing.T) {
	const slots, size = 3, 10 << 10
	srv := StartChild(t, ChildOptions{Model: "stdnet", FDSlots: slots})

	limit := childFDLimit(t, srv.Pid)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", srv.Pid))
	if err != nil {
		t.Fatal(err)
	}
	free := int(limit)
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && uint64(fd) < limit {
			free--
		}
	}
	if free != slots {
		t.Errorf("the child has %d free fd numbers under its RLIMIT_NOFILE of %d, want %d", free, limit, slots)
	}

	c, err := Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := Echo(c, 1, 0, size); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if rss := srv.RSSKiB(t); rss <= 0 {
		t.Errorf("child VmRSS %d KiB", rss)
	}
	if cpu := srv.CPUTime(t); cpu < 0 {
		t.Errorf("child CPU time %v", cpu)
	}

	stats, ok := srv.Stop(t)
	if !ok {
		t.FailNow()
	}
	if stats.Goroutines <= 0 {
		t.Errorf("the child's stats line counts %d goroutines", stats.Goroutines)
	}
	stats.Goroutines = 0 // the process's, not the model's: compared above
	if want := (server.Stats{Accepted: 1, BytesIn: size, BytesOut: size}); stats != want {
		t.Errorf("child server counted %+v, want %+v", stats, want)
	}
}

// childFDLimit reads the soft RLIMIT_NOFILE of process pid.
func childFDLimit(t *testing.T, pid int) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max open files"); ok {
			soft, err := strconv.ParseUint(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/limits: %q: %v", pid, sc.Text(), err)
			}
			return soft
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits", pid)
	return 0
}
