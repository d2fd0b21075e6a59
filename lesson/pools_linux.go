package lesson

// Claims 7–8: the concurrency unit of socketserver's shape (a thread or a process per
// connection, or a fixed pool of them) and what it costs.

import (
	"fmt"
	"net"
	"time"

	"echobench/bench"
	"echobench/server"
)

func init() {
	register(&Experiment{
		ID:    7,
		Title: "a pool limits concurrency: pool N serves N, the N+1st waits",
		Claims: []Quote{
			{notes002, 843, "池作用是将进程或线程控制操作系统可承受的范围内",
				"The point of a pool is to keep processes or threads within the range the operating system can bear."},
			{notes001, 3147, "它降低了程序的运行效率(让程序不能无限制创建进程或是线程),但是保证了计算机硬件的安全",
				"It lowers the program's efficiency (the program cannot create processes or threads without limit), but keeps the hardware safe."},
		},
		Method: fmt.Sprintf("A thread pool (blocking -pool %d) and a prefork pool (process -pool %d): %d clients connect "+
			"and echo and hold their connections; client %d connects and sends, and must get no echo for %v; then one held "+
			"client closes, and the time until client %d's echo is measured. echobench with %d connections against the "+
			"same pools counts how many of them were served in its window.", poolSize, poolSize, poolSize, poolSize+1,
			poolHold, poolSize+1, 2*poolSize),
		Rule: fmt.Sprintf("holds if, for both pools, all %d held clients were served, client %d got no echo while they "+
			"held, got it within a second of one closing, and echobench saw at most %d of its %d connections served; does "+
			"not hold otherwise.", poolSize, poolSize+1, poolSize, 2*poolSize),
		Budget: 30 * time.Second,
		Run:    runPools,
	})
	register(&Experiment{
		ID:    8,
		Title: "threads are cheaper than processes",
		Claims: []Quote{
			{notes001, 2408, "这也就是说创建线程消耗的资源远小于创建进程",
				"That is to say, creating a thread consumes far fewer resources than creating a process."},
			{notes002, 3, "socketserver = 多进程 + 多线程 +  IO模型", "socketserver = multiple processes + multiple threads + an IO model."},
		},
		Method: "Per-connection setup cost: every connection does one echo, closes and connects again (echobench " +
			"-reconnect 1, 4 connections) against a thread per connection (blocking), a process per connection (process) " +
			"and a prefork pool of 4 (process -pool 4): new connections per second and the server's CPU per connection. " +
			"Per-connection memory: 1 and 100 idle connections against blocking and process, the marginal RSS per " +
			"connection (RSS at 100 − RSS at 1) / 99 over the server's whole process tree.",
		Rule: "holds if the thread per connection makes more new connections per second than the process per connection " +
			"and costs less RSS per connection; holds only when one counts the one of the two that is lower; does not " +
			"hold otherwise.",
		Budget: 45 * time.Second,
		Run:    runThreadsProcesses,
	})
}

const (
	poolSize = 4
	poolHold = 500 * time.Millisecond
)

// poolProbe is claim 7's measurement of one pool.
type poolProbe struct {
	Model         string
	Served        int           // held clients that got their echo
	Waited        bool          // the extra client got no echo while the pool was full
	Late          bool          // and got it once a held client closed
	AfterClose    time.Duration // from the close to the extra client's echo
	EchobenchConn int           // connections echobench saw served, of 2 × poolSize
}

func probePool(t *Trial, model string) (poolProbe, error) {
	p := poolProbe{Model: model}
	srv, err := t.StartServer(model, server.Config{Pool: poolSize})
	if err != nil {
		return p, err
	}
	defer Stop(srv)
	held, err := dialAll(srv.Addr, poolSize)
	if err != nil {
		return p, err
	}
	defer closeAll(held)
	for _, c := range held {
		if ping(c, 3*time.Second) {
			p.Served++
		}
	}
	extra, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
	if err != nil {
		return p, fmt.Errorf("connect the extra client: %w", err) // the backlog holds it: connect succeeds
	}
	defer extra.Close()
	if _, err := extra.Write([]byte("ping")); err != nil {
		return p, fmt.Errorf("extra client write: %w", err)
	}
	got := make([]byte, 4)
	extra.SetReadDeadline(time.Now().Add(poolHold))
	_, err = extra.Read(got)
	p.Waited = isTimeout(err)
	held[0].Close()
	closed := time.Now()
	extra.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := extra.Read(got); err == nil && string(got) == "ping" {
		p.Late = true
		p.AfterClose = time.Since(closed)
	}
	return p, nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func judgePools(ps []poolProbe) Verdict {
	why := ""
	ok := len(ps) > 0
	for _, p := range ps {
		why += fmt.Sprintf("%s -pool %d: %d held served, the next waited %v, served %.0f ms after a close; echobench saw %d of %d served. ",
			p.Model, poolSize, p.Served, p.Waited, float64(p.AfterClose.Microseconds())/1000, p.EchobenchConn, 2*poolSize)
		ok = ok && p.Served == poolSize && p.Waited && p.Late && p.AfterClose < time.Second && p.EchobenchConn <= poolSize
	}
	if ok {
		return Verdict{Outcome: Holds, Why: why + "The rest wait in the listen backlog, connected but unserved: the pool bounds " +
			"what the server spends, and the waiting client's latency is however long a pooled connection holds its worker."}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runPools(t *Trial) (Finding, error) {
	var f Finding
	var ps []poolProbe
	for _, model := range []string{"blocking", "process"} {
		p, err := probePool(t, model)
		if err != nil {
			return f, err
		}
		r, err := t.Echobench(model+"-pool", loadArgs(model, "-pool", fmt.Sprint(poolSize), "-c", fmt.Sprint(2*poolSize))...)
		if err != nil && r == nil {
			return f, err
		}
		p.EchobenchConn = r.Summary.ConnsEstablished
		if len(r.Runs) > 0 {
			p.EchobenchConn = r.Runs[0].ConnsEchoed
		}
		ps = append(ps, p)
		f.Figures = append(f.Figures,
			Figure{Name: model + " -pool 4: held clients served", Value: float64(p.Served)},
			Figure{Name: model + " -pool 4: client 5 got no echo while the pool was full", Value: b2f(p.Waited), Unit: "bool", Note: "for " + poolHold.String()},
			Figure{Name: model + " -pool 4: client 5's echo after a held client closed", Value: float64(p.AfterClose.Microseconds()) / 1000, Unit: "ms"},
			Figure{Name: model + " -pool 4: client 5's whole round trip", Value: float64((poolHold + p.AfterClose).Microseconds()) / 1000, Unit: "ms", Note: "its wait is the hold"},
			Figure{Name: model + " -pool 4: echobench connections served of 8", Value: float64(p.EchobenchConn)})
	}
	t.Record(fmt.Sprintf("python3 ../shared/tools/echocheck.py poollimit ADDR --conns %d   # the same probe, from a tool we did not write", poolSize))
	f.Verdict = judgePools(ps)
	return f, nil
}

// costFigures are claim 8's: per-connection setup and memory of threads and processes.
type costFigures struct {
	ThreadConnsPerS, ProcessConnsPerS, PreforkConnsPerS float64
	ThreadRSSPerConn, ProcessRSSPerConn                 float64
}

func judgeCost(f costFigures) Verdict {
	setup := f.ThreadConnsPerS > f.ProcessConnsPerS
	memory := f.ThreadRSSPerConn < f.ProcessRSSPerConn
	why := fmt.Sprintf("New connections per second: thread %.0f, process %.0f (%.1f×), prefork pool %.0f. RSS per connection: "+
		"thread %s, process %s.", f.ThreadConnsPerS, f.ProcessConnsPerS, ratio(f.ThreadConnsPerS, f.ProcessConnsPerS),
		f.PreforkConnsPerS, FormatValue(f.ThreadRSSPerConn/1024, "KiB"), FormatValue(f.ProcessRSSPerConn/1024, "KiB"))
	switch {
	case setup && memory:
		return Verdict{Outcome: Holds, Why: why}
	case setup:
		return Verdict{Outcome: HoldsOnlyWhen, Condition: "one counts setup cost, not memory", Why: why}
	case memory:
		return Verdict{Outcome: HoldsOnlyWhen, Condition: "one counts memory, not setup cost", Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runThreadsProcesses(t *Trial) (Finding, error) {
	var f Finding
	var fig costFigures
	for _, row := range []struct {
		name, model string
		flags       []string
		into        *float64
	}{
		{"thread", "blocking", nil, &fig.ThreadConnsPerS},
		{"process", "process", nil, &fig.ProcessConnsPerS},
		{"prefork", "process", []string{"-pool", "4"}, &fig.PreforkConnsPerS},
	} {
		r, err := t.Echobench("reconnect-"+row.name, loadArgs(row.model, append([]string{"-reconnect", "1", "-c", "4"}, row.flags...)...)...)
		if err != nil {
			return f, err
		}
		*row.into = r.Summary.NewConnsPerSec
		f.Figures = append(f.Figures,
			Figure{Name: row.name + ": new connections per second", Value: r.Summary.NewConnsPerSec},
			Figure{Name: row.name + ": server CPU per new connection", Value: bench.StatServerUsConn.Of(r.Summary), Unit: "µs"})
	}
	for _, row := range []struct {
		name, model string
		into        *float64
	}{
		{"thread", "blocking", &fig.ThreadRSSPerConn},
		{"process", "process", &fig.ProcessRSSPerConn},
	} {
		var rss [2]float64
		for i, c := range []int{1, 100} {
			r, err := t.Echobench(fmt.Sprintf("idle-%s-c%d", row.name, c), loadArgs(row.model, "-c", fmt.Sprint(c), "-rate", idleRate(c))...)
			if err != nil {
				return f, err
			}
			rss[i] = float64(r.Summary.ServerPeakRSSBytes)
			if c == 100 {
				f.Figures = append(f.Figures, Figure{Name: row.name + ": threads / processes at 100 idle connections",
					Value: float64(r.Summary.ServerPeakThreads), Note: fmt.Sprintf("%d processes", r.Summary.ServerProcesses)})
			}
		}
		*row.into = (rss[1] - rss[0]) / 99
		f.Figures = append(f.Figures, Figure{Name: row.name + ": RSS per connection", Value: *row.into / 1024, Unit: "KiB", Note: "(RSS at 100 − at 1) / 99"})
	}
	f.Notes = []string{"A process tree's RSS sums each process's resident pages, so pages the children share with each " +
		"other (the binary's text) count once per process: that is what each process costs the machine's page tables, " +
		"not what it costs in distinct memory."}
	f.Verdict = judgeCost(fig)
	return f, nil
}
