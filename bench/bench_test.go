package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/reexec"
	"echobench/loadgen"
	"echobench/measure"
	_ "echobench/models/all"
	"echobench/report"
	"echobench/server"
)

// TestMain lets the test binary be its own echoserver: package child re-executes it in its
// reexec role, and the process model re-executes it as its per-connection child.
func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

// TestRowArgsCarryConfig checks that a row's server configuration reaches echobench's command
// line as server.Config's own flags, which echobench declares through the same RegisterFlags.
func TestRowArgsCarryConfig(t *testing.T) {
	want := server.Config{Loops: 2, Pool: 128, OutboundLimit: 4096, ReusePort: true, LockOSThread: true}
	row := Row{Name: "x", Model: "epoll", Server: want}
	var got server.Config
	fs := flag.NewFlagSet("echobench", flag.ContinueOnError)
	model := fs.String("model", "", "")
	got.RegisterFlags(fs)
	if err := fs.Parse(row.Args()); err != nil {
		t.Fatal(err)
	}
	if *model != "epoll" || !reflect.DeepEqual(got, want) {
		t.Errorf("row %q gives -model %s and %+v, want epoll and %+v", row.Args(), *model, got, want)
	}

	// The harness's shared server flags reach every row, and a row's own setting wins.
	got = server.Config{}
	args := cellArgs(server.Config{ReusePort: true, Pool: 7}, Row{Model: "process", Server: server.Config{Pool: 128}}, Cell{Args: []string{"-c", "1"}})
	fs = flag.NewFlagSet("echobench", flag.ContinueOnError)
	fs.String("model", "", "")
	fs.Int("c", 0, "")
	got.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if want := (server.Config{ReusePort: true, Pool: 128}); !reflect.DeepEqual(got, want) {
		t.Errorf("cell args %q give %+v, want %+v", args, got, want)
	}
}

// benchConns and benchSizes are BenchmarkEcho's cells: one connection (ping-pong latency, the
// syscall path alone), 100 and 1,000 (where the IO models part), each with a small message and a
// 16 KiB one (where copying starts to count). ECHOBENCH_CONNS and ECHOBENCH_SIZES replace them.
var (
	benchConns = []int{1, 100, 1000}
	benchSizes = []int{64, 16384}
)

// benchWarmup and benchWindow are one iteration: a warmup the figures leave out, then the
// measured window. A second keeps `-benchtime 2x` over all 48 cells to a few minutes on two
// cores, short enough for one turn of a shared machine.
const (
	benchWarmup = 300 * time.Millisecond
	benchWindow = time.Second
)

// logHeadBytes is how much of a server child's stderr a cell keeps: its first lines say why it
// refused connections, and the rest would only repeat them.
const logHeadBytes = 4096

// BenchmarkEcho is the comparison inside `go test -bench`: every iteration starts the model as
// its own process, pinned to CPU 0, while this process drives it from CPU 1 through package
// measure, as echobench -model does. Sub-benchmarks are named model=X/conns=N/size=S; one iteration is one measured second of
// closed-loop ping-pong (benchWindow, after benchWarmup). Every metric is per echoed message or
// over the measured windows, so benchstat compares models and commits directly: ns/op is wall
// time per echoed message (the inverse of msgs/s), msgs/s the echoed messages per second, p99-µs
// the 99th percentile round trip of all iterations merged, and server-ns/msg the server tree's
// CPU (user+sys) per echoed message.
//
//	go test -run '^$' -bench . -benchtime 2x ./bench | tee new.txt; make benchstat NEW=new.txt
//
// ECHOBENCH_MODELS=epoll,stdnet narrows the models, ECHOBENCH_CONNS=100,1000 and
// ECHOBENCH_SIZES=64 the cells. A model that cannot serve a cell is skipped with its reason:
// unavailable here (uring without io_uring), or rejecting connections (select past fd 1024).
func BenchmarkEcho(b *testing.B) {
	models := server.Names()
	if env := os.Getenv("ECHOBENCH_MODELS"); env != "" {
		models = strings.Split(env, ",")
	}
	conns, err := envInts("ECHOBENCH_CONNS", benchConns)
	if err != nil {
		b.Fatal(err)
	}
	sizes, err := envInts("ECHOBENCH_SIZES", benchSizes)
	if err != nil {
		b.Fatal(err)
	}
	var pins measure.Pinning
	if online, err := affinity.Online(); err == nil && len(online) >= 2 {
		prev := runtime.GOMAXPROCS(0)
		var p report.Pinning
		if pins, err = measure.PinApart(affinity.Format(online[:1]), affinity.Format(online[1:2]), true, &p); err != nil {
			b.Logf("pinning the load generator: %v (running unpinned)", err)
		} else {
			b.Cleanup(func() {
				runtime.GOMAXPROCS(prev)
				affinity.PinProcess(os.Getpid(), online)
			})
		}
	} else {
		b.Logf("server and load generator unpinned: no two CPUs to put them apart (online %v, %v)", online, err)
	}
	for _, model := range models {
		m, err := server.Lookup(model)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range conns {
			for _, size := range sizes {
				b.Run(fmt.Sprintf("model=%s/conns=%d/size=%d", model, c, size), func(b *testing.B) {
					if err := m.CheckAvailable(); err != nil {
						b.Skip(err)
					}
					benchCell(b, model, pins, c, size)
				})
			}
		}
	}
}

// envInts parses a comma-separated list of positive integers from the environment variable
// name, or returns def when it is unset.
func envInts(name string, def []int) ([]int, error) {
	env := os.Getenv(name)
	if env == "" {
		return def, nil
	}
	var list []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s=%s: %q is not a positive integer; give a list such as 1,100", name, env, f)
		}
		list = append(list, n)
	}
	return list, nil
}

// benchCell measures the cell through package measure exactly as echobench -model does: every
// iteration starts its own server child and stops it after, so no iteration meets the threads,
// processes or sockets the one before it left winding down.
func benchCell(b *testing.B, model string, pins measure.Pinning, conns, size int) {
	var serverLog logHead
	spec := measure.Spec{
		Model: model, ServerCPUs: pins.Server, ClientCPUs: pins.Client, Stderr: &serverLog,
		Load: loadgen.Config{
			Conns: conns, Warmup: benchWarmup, Duration: benchWindow,
			Sizes: []int{size}, Pipeline: 1, Verify: true,
		},
	}
	var messages uint64
	var elapsed time.Duration
	var serverCPU float64
	var iterations, saturated, bothSaturated int
	echoed := conns
	latency := loadgen.NewHistogram()
	for i := 0; b.Loop(); i++ {
		out, err := measure.Run(context.Background(), spec, i)
		if err != nil {
			b.Fatalf("%s: %v", model, err)
		}
		res := out.Result
		if res.VerifyFailuresTotal > 0 {
			b.Fatalf("%s: %d messages came back different from what was sent", model, res.VerifyFailuresTotal)
		}
		if sc := out.Run.ServerCounts; sc != nil && sc.Rejected > 0 {
			// A server that closes connections unserved would be measured on the ones it
			// kept: the cell is beyond it, and its own log says why.
			b.Skipf("%s rejected %d of %d connections, so it cannot serve this cell; its log: %s", model, sc.Rejected, conns, serverLog.String())
		}
		messages += res.Messages
		elapsed += res.Elapsed
		latency.Merge(res.Latency)
		if sv := out.Run.Server; sv != nil {
			serverCPU += sv.WindowCPUS
		}
		echoed = min(echoed, res.ConnsEchoed)
		iterations++
		if out.Run.Client.Saturated {
			saturated++
		}
		if out.Run.Client.BothSaturated {
			bothSaturated++
		}
	}
	if messages == 0 {
		b.Fatalf("%s: no message was echoed", model)
	}
	if echoed < conns {
		b.Logf("%s served only %d of %d connections in its worst window: the figures are those of the connections it served", model, echoed, conns)
	}
	// Saturation is a condition of the figures, judged by package measure as for echobench.
	switch {
	case bothSaturated > 0:
		b.Logf("both saturated in %d of %d iterations: the load generator and the server each filled its core, so the figures are the pair's limit (on loopback each side's write runs the other's receive path), not the server's alone", bothSaturated, iterations)
	case saturated > 0:
		b.Logf("the load generator saturated its core in %d of %d iterations: the figures are a floor for the server", saturated, iterations)
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(messages), "ns/op")
	b.ReportMetric(float64(messages)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(latency.ValueAtQuantile(99)), "p99-µs")
	b.ReportMetric(serverCPU*1e9/float64(messages), "server-ns/msg")
}

// logHead keeps the first logHeadBytes written to it: the server child's stderr, which the
// child's reader goroutine writes while the cell reads it after the run.
type logHead struct {
	mu   sync.Mutex
	head []byte
}

func (h *logHead) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	room := logHeadBytes - len(h.head)
	h.head = append(h.head, p[:max(0, min(len(p), room))]...)
	return len(p), nil
}

func (h *logHead) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.TrimSpace(string(h.head))
}
