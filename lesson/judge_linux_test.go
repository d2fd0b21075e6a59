package lesson

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"echobench/bench"
)

// The verdict rules, on fixed figures: each judge must reach every outcome its rule names.

func TestJudgePhases(t *testing.T) {
	ok := phasesFigures{Conns: 50, Threads: 60, InRead: 50, IdleCPUPct: 0.1, SendBlocked: true}
	if v := judgePhases(ok); v.Outcome != Holds {
		t.Fatalf("%+v: %v", ok, v)
	}
	busy := ok
	busy.IdleCPUPct = 40
	if v := judgePhases(busy); v.Outcome != DoesNotHold {
		t.Fatalf("busy idle server: %v", v)
	}
}

func TestJudgeBusy(t *testing.T) {
	f := busyFigures{NonblockingIdlePct: 95, EpollIdlePct: 2, NonblockingUsPerMsg: 15, EpollUsPerMsg: 10}
	if v := judgeBusy(f); v.Outcome != Holds {
		t.Fatal(v)
	}
	f.NonblockingUsPerMsg = 10.5
	if v := judgeBusy(f); v.Outcome != HoldsOnlyWhen {
		t.Fatal(v)
	}
	f.NonblockingIdlePct = 20
	if v := judgeBusy(f); v.Outcome != DoesNotHold {
		t.Fatal(v)
	}
}

func TestJudgeSleep(t *testing.T) {
	sel := sleepRow{CPUPct: 3, P50us: 60}
	f := sleepFigures{Busy: sleepRow{CPUPct: 99}, Slept: sleepRow{CPUPct: 98}, Select: sel, Sleep: time.Millisecond}
	if v := judgeSleep(f); v.Outcome != NotMeasurable || !strings.Contains(v.Why, "no effect") {
		t.Fatalf("flag without effect: %v", v)
	}
	f.Slept = sleepRow{CPUPct: 5, P50us: 600}
	if v := judgeSleep(f); v.Outcome != HoldsOnlyWhen {
		t.Fatalf("slow but cheap: %v", v)
	}
	f.Slept.P50us = 100
	if v := judgeSleep(f); v.Outcome != Holds {
		t.Fatalf("like select: %v", v)
	}
	f.Slept = sleepRow{CPUPct: 50, P50us: 600}
	if v := judgeSleep(f); v.Outcome != DoesNotHold {
		t.Fatalf("neither: %v", v)
	}
}

func est(mid, lo, hi float64) bench.Estimate { return bench.Estimate{Mid: mid, Lo: lo, Hi: hi, N: 3} }

func TestJudgeOneSocket(t *testing.T) {
	cases := []struct {
		rate, cpu bench.Estimate
		want      Outcome
	}{
		{est(0.8, 0.7, 0.9), est(1.2, 1.1, 1.3), Holds},
		{est(1.2, 1.1, 1.3), est(1, 0.9, 1.1), DoesNotHold},
		{est(1, 0.9, 1.1), est(1.2, 1.1, 1.3), HoldsOnlyWhen},
		{est(1, 0.9, 1.1), est(1, 0.9, 1.1), DoesNotHold},
		{bench.Estimate{Mid: 1, N: 1}, est(1, 1, 1), NotMeasurable},
	}
	for _, c := range cases {
		if v := judgeOneSocket(oneSocketFigures{Rate: c.rate, CPU: c.cpu}); v.Outcome != c.want {
			t.Errorf("rate %v cpu %v: %v; want %v", c.rate, c.cpu, v.Outcome, c.want)
		}
	}
}

func TestJudgeAsync(t *testing.T) {
	cheap, dear, tie := est(0.8, 0.7, 0.9), est(1.2, 1.1, 1.3), est(1, 0.9, 1.1)
	cell := func(n int, e bench.Estimate) sweepCell { return sweepCell{Conns: n, CPU: e, Rate: tie} }
	if v := judgeAsync([]sweepCell{cell(1, cheap), cell(100, cheap)}); v.Outcome != Holds {
		t.Fatal(v)
	}
	v := judgeAsync([]sweepCell{cell(1, dear), cell(100, cheap)})
	if v.Outcome != HoldsOnlyWhen || !strings.Contains(v.Condition, "100") {
		t.Fatal(v)
	}
	if v := judgeAsync([]sweepCell{cell(1, dear), cell(100, tie)}); v.Outcome != DoesNotHold {
		t.Fatal(v)
	}
	if v := judgeAsync([]sweepCell{cell(1, tie)}); v.Outcome != DoesNotHold || !strings.Contains(v.Why, "no measurable") {
		t.Fatal(v)
	}
}

func TestJudgeReset(t *testing.T) {
	seen := []resetSeen{{Way: "select", Reported: "readable", Read: "ECONNRESET"}}
	models := []modelReset{{Model: "epoll", Closed: true, Echoes: true}, {Model: "uring", Why: "no io_uring"}}
	if v := judgeReset(resetFigures{Seen: seen, Models: models}); v.Outcome != DoesNotHold || !strings.Contains(v.Why, "except: none") {
		t.Fatal(v)
	}
	seen[0] = resetSeen{Way: "select", Reported: "nothing", Read: "ECONNRESET"}
	if v := judgeReset(resetFigures{Seen: seen}); v.Outcome != Holds {
		t.Fatal(v)
	}
}

func TestJudgePools(t *testing.T) {
	p := poolProbe{Model: "blocking", Served: poolSize, Waited: true, Late: true, AfterClose: 5 * time.Millisecond, EchobenchConn: poolSize}
	if v := judgePools([]poolProbe{p}); v.Outcome != Holds {
		t.Fatal(v)
	}
	p.Waited = false
	if v := judgePools([]poolProbe{p}); v.Outcome != DoesNotHold {
		t.Fatal(v)
	}
}

func TestJudgeCost(t *testing.T) {
	f := costFigures{ThreadConnsPerS: 5000, ProcessConnsPerS: 500, ThreadRSSPerConn: 40 << 10, ProcessRSSPerConn: 4 << 20}
	if v := judgeCost(f); v.Outcome != Holds {
		t.Fatal(v)
	}
	f.ThreadRSSPerConn = 8 << 20
	if v := judgeCost(f); v.Outcome != HoldsOnlyWhen || !strings.Contains(v.Condition, "setup") {
		t.Fatal(v)
	}
}

func TestJudgeHeaderAndSticky(t *testing.T) {
	if v := judgeHeader(headerFigures{TestPassed: true, Refused: true, RefusalNamesBound: true}); v.Outcome != Holds {
		t.Fatal(v)
	}
	if v := judgeHeader(headerFigures{TestPassed: true, Refused: true}); v.Outcome != DoesNotHold {
		t.Fatal(v)
	}
	if v := judgeSticky(stickyFigures{NaivePassed: true, ReassemblyPassed: true, Echoed: 10}); v.Outcome != Holds {
		t.Fatal(v)
	}
	if v := judgeSticky(stickyFigures{NaivePassed: true, ReassemblyPassed: true, Echoed: 10, Failures: 1}); v.Outcome != DoesNotHold {
		t.Fatal(v)
	}
}

func TestJudgeUDP(t *testing.T) {
	if v := judgeUDP(udpFigures{}); v.Outcome != NotMeasurable {
		t.Fatal(v)
	}
	f := udpFigures{Available: true, EmptyEchoed: true, DatagramsIn: 100, Sent: 100, Replies: 80}
	if v := judgeUDP(f); v.Outcome != Holds {
		t.Fatal(v)
	}
	f.Replies = 100
	if v := judgeUDP(f); v.Outcome != HoldsOnlyWhen {
		t.Fatal(v)
	}
	f.Accepted = 1
	if v := judgeUDP(f); v.Outcome != DoesNotHold {
		t.Fatal(v)
	}
}

func TestJudgeHandler(t *testing.T) {
	if v := judgeHandler(handlerFigures{EpollIdle: 40000, EpollBlock: 40000, ThreadBlock: 40000, PoolBlock: 40000}); v.Outcome != NotMeasurable {
		t.Fatalf("no effect: %v", v)
	}
	if v := judgeHandler(handlerFigures{EpollIdle: 40000, EpollBlock: 950, ThreadBlock: 17000, PoolBlock: 3800}); v.Outcome != Holds {
		t.Fatal(v)
	}
	if v := judgeHandler(handlerFigures{EpollIdle: 40000, EpollBlock: 950, ThreadBlock: 1000, PoolBlock: 900}); v.Outcome != DoesNotHold {
		t.Fatal(v)
	}
}

func TestRegistryIsCompleteAndWithinBudget(t *testing.T) {
	es := Experiments()
	if len(es) != 12 {
		t.Fatalf("%d experiments; want the 12 claims", len(es))
	}
	for i, e := range es {
		if e.ID != i+1 || len(e.Claims) == 0 || e.Rule == "" || e.Method == "" || e.Run == nil || e.Budget <= 0 {
			t.Errorf("experiment %d is incomplete: %+v", e.ID, e)
		}
		for _, q := range e.Claims {
			if q.File == "" || q.Line <= 0 || q.Chinese == "" || q.English == "" {
				t.Errorf("experiment %d: claim without its file, line or translation: %+v", e.ID, q)
			}
		}
	}
	if b := TotalBudget(es); b >= 10*time.Minute {
		t.Errorf("budgets add up to %v; the lesson must finish in under 10 minutes", b)
	}
}

func TestRender(t *testing.T) {
	e := &Experiment{ID: 1, Title: "a | claim", Method: "M.", Rule: "R.", Budget: time.Second,
		Claims: []Quote{{File: "002.txt", Line: 7, Chinese: "中文", English: "English"}}}
	f := Finding{Commands: []string{"bin/echobench -c 1"}, Figures: []Figure{{Name: "cpu", Value: 12.345, Unit: "%"},
		{Name: "flag", Value: 1, Unit: "bool"}}, Tests: []TestRun{{Command: "go test -run X ./lesson/", Passed: false}},
		Verdict: Verdict{Outcome: HoldsOnlyWhen, Condition: "it is idle", Why: "because."}, Raw: []string{"/d/01-x.json"}}
	var b bytes.Buffer
	Render(&b, Header{Command: "make lesson", Dir: "results/lesson-x", Env: "env"}, []*Experiment{e}, []Finding{f})
	out := b.String()
	for _, want := range []string{"| 1 | a \\| claim | holds only when it is idle |", "> 中文", "`002.txt` line 7", "*English*",
		"```sh\nbin/echobench -c 1\n```", "| cpu | 12.3 % |", "| flag | yes |", "`go test -run X ./lesson/`: FAILED",
		"**Verdict: holds only when it is idle.** because.", "*Rule:* R.", "`01-x.json`"} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{{3, "", "3"}, {0.01234, "µs", "0.0123 µs"}, {1234.5, "msgs/s", "1234 msgs/s"}, {0, "bool", "no"}} {
		if got := FormatValue(c.v, c.unit); got != c.want {
			t.Errorf("FormatValue(%v, %q) = %q; want %q", c.v, c.unit, got, c.want)
		}
	}
}

// TestSpliceVerdicts checks that the tour's table is replaced between its markers and nowhere
// else, and that a page without them is refused.
func TestSpliceVerdicts(t *testing.T) {
	page := "intro\n" + VerdictsBegin + "\nold table\n" + VerdictsEnd + "\noutro\n"
	got, err := SpliceVerdicts(page, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + VerdictsBegin + "\n\nnew table\n" + VerdictsEnd + "\noutro\n"; got != want {
		t.Errorf("spliced:\n%q\nwant\n%q", got, want)
	}
	if again, _ := SpliceVerdicts(got, "new table\n"); again != got {
		t.Errorf("a second splice changed the page:\n%q", again)
	}
	if _, err := SpliceVerdicts("no markers", "x"); err == nil {
		t.Error("a page without markers: no error")
	}
}
