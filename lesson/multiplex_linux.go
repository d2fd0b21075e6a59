package lesson

// Claims 4–6: what multiplexing and asynchronous IO cost and see, against the claims of the IO
// models chapter.

import (
	"fmt"
	"strings"
	"time"

	"echobench/bench"
)

func init() {
	register(&Experiment{
		ID:    4,
		Title: "with one socket, multiplexing is slower than blocking IO",
		Claims: []Quote{
			{notes002, 499, "当只监测一个套接字时,多路复用比阻塞IO的效率还要低。",
				"When only one socket is watched, multiplexing is even less efficient than blocking IO."},
		},
		Method: fmt.Sprintf("One connection, closed-loop 64 B ping-pong, against select and blocking in the same run, "+
			"%d rounds with the order alternated; the ratio select/blocking of msgs/s and of server CPU per message is "+
			"formed per round, with its 95 %% interval (bench.Ratio). select pays one select(2) per message on top of "+
			"the read and the send blocking IO makes.", oneSocketRounds),
		Rule: "holds if the msgs/s ratio's interval lies below 1; does not hold if above 1; if it contains 1, holds only " +
			"when efficiency means CPU per message if the CPU ratio's interval lies above 1, and does not hold (no " +
			"measurable difference) otherwise.",
		Budget: 40 * time.Second,
		Run:    runOneSocket,
	})
	register(&Experiment{
		ID:    5,
		Title: "select cannot see ConnectionResetError",
		Claims: []Quote{
			{notes002, 501, "一般会使用select模块帮忙完成IO多路复用模型。(注意: select不能监测到ConnectionResetError,只能监测到BlockingIOError",
				"The select module is generally used to build the IO multiplexing model. (Note: select cannot detect ConnectionResetError, it can only detect BlockingIOError.)"},
		},
		Method: "Raw syscalls on a loopback pair: the client closes with SO_LINGER 0, which sends an RST, and the server " +
			"side asks select(2), poll(2) and epoll_wait(2) what they see, then reads. A non-blocking read before the " +
			"reset shows the notes' BlockingIOError (EAGAIN). Then every model gets resets mid-transfer (" +
			fmt.Sprint(rstConns) + " connections × 3 rounds, each with 32 KiB unread, closed with SO_LINGER 0) and must " +
			"close every one (its own count of open connections back to zero) and still echo.",
		Rule: "does not hold if select reports the reset socket readable and the read that follows returns ECONNRESET " +
			"(select sees the reset as readiness; the error comes out of the read, as with every readiness API); holds " +
			"if select does not report it within a second.",
		Budget: 40 * time.Second,
		Run:    runReset,
	})
	register(&Experiment{
		ID:    6,
		Title: "asynchronous IO is the most efficient",
		Claims: []Quote{
			{notes002, 629, "异步IO模型的效率最高", "The asynchronous IO model is the most efficient."},
		},
		Method: fmt.Sprintf("io_uring (the kernel waits and copies, and reports completions) against epoll (the kernel "+
			"reports readiness, the program copies) at %v connections, closed-loop 64 B ping-pong, %d rounds with the "+
			"order alternated: throughput and the server's CPU per echoed message, as paired ratios uring/epoll with "+
			"95 %% intervals. On two loopback cores the pair saturates together, so CPU per message is the steadier "+
			"measure of efficiency.", sweepConns, sweepRounds),
		Rule: "per connection count, uring is cheaper if its CPU-per-message ratio's interval lies below 1 and dearer if " +
			"above; holds if cheaper at every count, holds only when at the counts where it is cheaper if at some, does " +
			"not hold otherwise; not measurable if uring cannot run here.",
		Budget: 150 * time.Second,
		Run:    runAsyncSweep,
	})
}

const (
	// Eight alternated rounds: with three, a 10 % difference's 95 % interval on this shared
	// two-core machine straddled 1 in one run and not in the next, and the verdict flipped.
	oneSocketRounds = 8
	sweepRounds     = 8
	rstConns        = 20
)

var sweepConns = []int{1, 100, 1000}

// oneSocketFigures are claim 4's paired ratios select/blocking.
type oneSocketFigures struct {
	Rate, CPU bench.Estimate
}

func judgeOneSocket(f oneSocketFigures) Verdict {
	why := fmt.Sprintf("select/blocking: msgs/s %.3f (%.3f–%.3f), CPU per message %.3f (%.3f–%.3f).",
		f.Rate.Mid, f.Rate.Lo, f.Rate.Hi, f.CPU.Mid, f.CPU.Lo, f.CPU.Hi)
	switch {
	case f.Rate.N < 2:
		return Verdict{Outcome: NotMeasurable, Why: "fewer than two paired rounds: " + why}
	case f.Rate.Hi < 1:
		return Verdict{Outcome: Holds, Why: why}
	case f.Rate.Lo > 1:
		return Verdict{Outcome: DoesNotHold, Why: "select is faster: " + why}
	case f.CPU.Lo > 1:
		return Verdict{Outcome: HoldsOnlyWhen, Condition: "efficiency means CPU per message: the round trip is as fast, the server spends more on it",
			Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: "no measurable difference: " + why}
}

func runOneSocket(t *Trial) (Finding, error) {
	var f Finding
	runs := map[string]*series{"select": {}, "blocking": {}}
	for round := range oneSocketRounds {
		for _, model := range order(round, "select", "blocking") {
			r, err := t.Echobench(fmt.Sprintf("%s-r%d", model, round), loadArgs(model, "-c", "1")...)
			if err != nil {
				return f, err
			}
			runs[model].add(r, round)
		}
	}
	sel, blk := runs["select"], runs["blocking"]
	fig := oneSocketFigures{Rate: sel.ratioTo(blk, bench.StatMsgsPerSec.Of), CPU: sel.ratioTo(blk, usPerMsg)}
	for _, m := range []string{"select", "blocking"} {
		rate, cpu := runs[m].estimate(bench.StatMsgsPerSec.Of), runs[m].estimate(usPerMsg)
		p50 := runs[m].estimate(bench.StatP50.Of)
		f.Figures = append(f.Figures,
			Figure{Name: m + ": msgs/s", Value: rate.Mid, Note: intervalNote(rate)},
			Figure{Name: m + ": round trip p50", Value: p50.Mid, Unit: "µs"},
			Figure{Name: m + ": server CPU per message", Value: cpu.Mid, Unit: "µs", Note: intervalNote(cpu)})
	}
	f.Figures = append(f.Figures,
		Figure{Name: "select/blocking msgs/s", Value: fig.Rate.Mid, Note: intervalNote(fig.Rate)},
		Figure{Name: "select/blocking CPU per message", Value: fig.CPU.Mid, Note: intervalNote(fig.CPU)})
	f.Verdict = judgeOneSocket(fig)
	return f, nil
}

// sweepCell is one connection count of claim 6: the paired ratios uring/epoll.
type sweepCell struct {
	Conns     int
	CPU, Rate bench.Estimate
}

func judgeAsync(cells []sweepCell) Verdict {
	var cheaper, dearer []string
	var parts []string
	for _, c := range cells {
		parts = append(parts, fmt.Sprintf("%d conns: CPU/msg %.3f (%.3f–%.3f), msgs/s %.3f", c.Conns, c.CPU.Mid, c.CPU.Lo, c.CPU.Hi, c.Rate.Mid))
		switch {
		case c.CPU.N >= 2 && c.CPU.Hi < 1:
			cheaper = append(cheaper, fmt.Sprint(c.Conns))
		case c.CPU.N >= 2 && c.CPU.Lo > 1:
			dearer = append(dearer, fmt.Sprint(c.Conns))
		}
	}
	why := "uring/epoll, " + strings.Join(parts, "; ") + "."
	switch {
	case len(cells) == 0:
		return Verdict{Outcome: NotMeasurable, Why: "no cell ran"}
	case len(cheaper) == len(cells):
		return Verdict{Outcome: Holds, Why: why}
	case len(cheaper) > 0:
		return Verdict{Outcome: HoldsOnlyWhen, Condition: "the server holds " + strings.Join(cheaper, " or ") + " connections",
			Why: why + " Dearer at: " + orNone(dearer) + "."}
	case len(dearer) > 0:
		return Verdict{Outcome: DoesNotHold, Why: "epoll is cheaper at " + strings.Join(dearer, ", ") + " connections: " + why}
	}
	return Verdict{Outcome: DoesNotHold, Why: "no measurable difference at any count: " + why}
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

func runAsyncSweep(t *Trial) (Finding, error) {
	var f Finding
	var cells []sweepCell
	for _, c := range sweepConns {
		runs := map[string]*series{"uring": {}, "epoll": {}}
		for round := range sweepRounds {
			for _, model := range order(round, "uring", "epoll") {
				r, err := t.Echobench(fmt.Sprintf("%s-c%d-r%d", model, c, round), loadArgs(model, "-c", fmt.Sprint(c))...)
				if err != nil {
					if model == "uring" {
						return Finding{Verdict: Verdict{Outcome: NotMeasurable, Why: "uring could not run here: " + err.Error()}}, nil
					}
					return f, err
				}
				runs[model].add(r, round)
			}
		}
		u, e := runs["uring"], runs["epoll"]
		cell := sweepCell{Conns: c, CPU: u.ratioTo(e, usPerMsg), Rate: u.ratioTo(e, bench.StatMsgsPerSec.Of)}
		cells = append(cells, cell)
		for _, m := range []string{"uring", "epoll"} {
			rate, cpu := runs[m].estimate(bench.StatMsgsPerSec.Of), runs[m].estimate(usPerMsg)
			f.Figures = append(f.Figures,
				Figure{Name: fmt.Sprintf("%d conns, %s: msgs/s", c, m), Value: rate.Mid, Note: intervalNote(rate)},
				Figure{Name: fmt.Sprintf("%d conns, %s: server CPU per message", c, m), Value: cpu.Mid, Unit: "µs", Note: intervalNote(cpu)})
		}
		f.Figures = append(f.Figures,
			Figure{Name: fmt.Sprintf("%d conns: uring/epoll CPU per message", c), Value: cell.CPU.Mid, Note: intervalNote(cell.CPU)},
			Figure{Name: fmt.Sprintf("%d conns: uring/epoll msgs/s", c), Value: cell.Rate.Mid, Note: intervalNote(cell.Rate)})
	}
	f.Verdict = judgeAsync(cells)
	return f, nil
}
