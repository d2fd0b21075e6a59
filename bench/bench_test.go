package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/child"
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

// BenchmarkEcho is the comparison inside `go test -bench`: every model runs as its own process,
// pinned to CPU 0, while this process drives it from CPU 1 with the same engine as echobench.
// One iteration is one measured second of ping-pong with 64-byte messages; ns/op is wall time
// per echoed message, so benchstat compares models directly:
//
//	go test -run '^$' -bench . -count 5 ./bench | tee new.txt; benchstat new.txt
//
// ECHOBENCH_MODELS=epoll,stdnet narrows the models.
func BenchmarkEcho(b *testing.B) {
	models := server.Names()
	if env := os.Getenv("ECHOBENCH_MODELS"); env != "" {
		models = strings.Split(env, ",")
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
	}
	for _, model := range models {
		m, err := server.Lookup(model)
		if err != nil {
			b.Fatal(err)
		}
		for _, conns := range []int{1, 100} {
			b.Run(fmt.Sprintf("model=%s/conns=%d/size=64", model, conns), func(b *testing.B) {
				if err := m.CheckAvailable(); err != nil {
					b.Skip(err)
				}
				benchCell(b, model, pins, conns)
			})
		}
	}
}

// benchCell measures through package measure, as echobench does, against one server child
// that serves all b.N runs.
func benchCell(b *testing.B, model string, pins measure.Pinning, conns int) {
	srv, err := child.Start(child.Options{Model: model, CPUs: pins.Server})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop(measure.DefaultStopGrace)
	spec := measure.Spec{
		ServerPID: srv.PID, ServerCPUs: pins.Server, ClientCPUs: pins.Client,
		Load: loadgen.Config{
			Addr: srv.Addr, Conns: conns, Warmup: 300 * time.Millisecond, Duration: time.Second,
			Sizes: []int{64}, Pipeline: 1, Verify: true,
		},
	}
	var messages uint64
	var elapsed time.Duration
	latency := loadgen.NewHistogram()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := measure.Run(context.Background(), spec, i)
		if err != nil {
			b.Fatal(err)
		}
		res := out.Result
		if res.VerifyFailures > 0 {
			b.Fatalf("%d messages came back different from what was sent", res.VerifyFailures)
		}
		messages += res.Messages
		elapsed += res.Elapsed
		latency.Merge(res.Latency)
		if sv := out.Run.Server; sv != nil && res.Messages > 0 {
			b.ReportMetric(sv.WindowCPUS*1e6/float64(res.Messages), "server-µs/msg")
		}
	}
	b.StopTimer()
	if messages == 0 {
		b.Fatal("no message was echoed")
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(messages), "ns/op")
	b.ReportMetric(float64(messages)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(latency.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(latency.ValueAtQuantile(99)), "p99-µs")
}
