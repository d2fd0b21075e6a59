package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/launch"
	"echobench/internal/serve"
	"echobench/loadgen"
	_ "echobench/models/all"
	"echobench/server"
)

// TestMain lets the test binary be its own echoserver: launch re-executes it with
// launch.RoleEnv set, and the process model re-executes it as its per-connection child.
func TestMain(m *testing.M) {
	server.RunChildIfRequested()
	if os.Getenv(launch.RoleEnv) == launch.RoleServer {
		os.Exit(serve.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
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
	serverCPUs, clientCPUs := []int(nil), []int(nil)
	if online, err := affinity.Online(); err == nil && len(online) >= 2 {
		serverCPUs, clientCPUs = online[:1], online[1:2]
		if _, err := affinity.PinProcess(os.Getpid(), clientCPUs); err != nil {
			b.Logf("pinning the load generator: %v (running unpinned)", err)
		} else {
			prev := runtime.GOMAXPROCS(len(clientCPUs))
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
				benchCell(b, model, serverCPUs, conns)
			})
		}
	}
}

func benchCell(b *testing.B, model string, cpus []int, conns int) {
	srv, err := launch.Start(launch.Options{Model: model, CPUs: cpus})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop(5 * time.Second)
	var messages uint64
	var elapsed time.Duration
	latency := loadgen.NewHistogram()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			Addr: srv.Addr, Conns: conns, Warmup: 300 * time.Millisecond, Duration: time.Second,
			Sizes: []int{64}, Pipeline: 1, Verify: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		if res.VerifyFailures > 0 {
			b.Fatalf("%d messages came back different from what was sent", res.VerifyFailures)
		}
		messages += res.Messages
		elapsed += res.Elapsed
		latency.Merge(res.Latency)
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
