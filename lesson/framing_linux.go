package lesson

// Claims 9–10: the length header's limit and sticky packets, run as go tests (framing.go's
// codecs, loadgen's frame parser) and as echobench -frame runs.

import (
	"fmt"
	"math"
	"strings"
	"time"

	"echobench/report"
)

func init() {
	register(&Experiment{
		ID:    9,
		Title: "the struct header's limit, and the JSON header that lifts it",
		Claims: []Quote{
			{notes000, 4, "之前我们解决粘包的方式是用struct模块来制作一个报头,但是这个解决的方案是有漏洞的,当我们需要传送的文件大于2g时将会报错。所以我们今天将用json来制作报头。",
				"We solved sticky packets with a header made by the struct module, but that has a hole: a file larger than 2 GB raises an error. So today we make the header with JSON."},
		},
		Method: fmt.Sprintf("The notes' header is struct.pack('i', len): a signed 32-bit field. echobench's frame header "+
			"(loadgen/frame.go) has a 4-byte unsigned length, and echobench bounds a message at %d bytes before it. The lesson "+
			"asks echobench for a framed message one byte larger (it must refuse, saying the bound), echoes a %d MiB framed "+
			"message, and runs the go test of the notes' two headers (lesson/framing.go): struct 'i' refuses 2 GiB, the JSON "+
			"header (header length, then header, then body) carries 5 GiB in its total_size.", echobenchMaxSize, bigFrame>>20),
		Rule: "holds if struct 'i' refuses 2 GiB and the JSON header carries 5 GiB (the go test passes) and echobench refuses " +
			"a message past its bound with an error that names the bound; does not hold otherwise.",
		Budget: 60 * time.Second,
		Run:    runHeaderLimit,
	})
	register(&Experiment{
		ID:    10,
		Title: "sticky packets: one recv is not one message",
		Claims: []Quote{
			{notes001, 1377, "对于tcp来说,我们这样连续send两次数据,这样的两次数据就会像水流一样粘在一起送给对方,对方可以只是接收一次.",
				"With TCP, two sends in a row flow together like water to the other side, which may take them in a single receive."},
			{notes001, 935, "解决粘包问题的思路就是:服务端发送数据的时候,先将数据的长度发送过去,客户端收到数据的长度之后,就知道接下来该收多少才能收完.",
				"The way out of sticky packets: when the server sends data it first sends its length; once the client has the length, it knows how much more to receive."},
		},
		Method: "Go tests on real loopback sockets: a deliberately naive reader that takes one recv for one message gets two " +
			"messages stuck together, and a message cut short (split by a small recv, or arriving in two pieces); the JSON " +
			"header reader reassembles messages written stuck together and dribbled 7 bytes at a time; loadgen's frame " +
			"parser reassembles frames from every cut of a stream. Then echobench -frame with 16 messages in flight per " +
			"connection and sizes from 64 B to 64 KiB, where the kernel merges and splits freely, checks every boundary and order.",
		Rule: "holds if the naive-reader tests pass (they assert that it breaks), the reassembly tests pass, and the echobench " +
			"-frame run echoed messages with no wrong byte, boundary or order; does not hold otherwise.",
		Budget: 60 * time.Second,
		Run:    runSticky,
	})
}

const (
	echobenchMaxSize = 1 << 30  // loadgen's bound on a message (engine.go)
	bigFrame         = 16 << 20 // the largest framed echo the lesson's budget affords
)

// headerFigures are claim 9's.
type headerFigures struct {
	TestPassed, Refused, RefusalNamesBound bool
	BigEchoed                              uint64
	BigFailures                            uint64
}

func judgeHeader(f headerFigures) Verdict {
	why := fmt.Sprintf("struct 'i' stops at %d bytes and the JSON header carries 5 GiB: test passed %v; echobench refused a "+
		"%d-byte message %v, naming its bound %v; its own field is unsigned, so it would hold %d; a %d MiB framed message "+
		"echoed %d times with %d failures.", math.MaxInt32, f.TestPassed, echobenchMaxSize+1, f.Refused, f.RefusalNamesBound,
		uint64(math.MaxUint32), bigFrame>>20, f.BigEchoed, f.BigFailures)
	if f.TestPassed && f.Refused && f.RefusalNamesBound {
		return Verdict{Outcome: Holds, Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runHeaderLimit(t *Trial) (Finding, error) {
	var f Finding
	test := t.GoTest("^TestStructHeaderStopsAt2GiB$", "./lesson/")
	f.Tests = append(f.Tests, test)
	stdout, stderr, err := t.Command("echobench", "-model", "epoll", "-frame", "-c", "1", "-size", fmt.Sprint(echobenchMaxSize+1), "-d", "1s")
	refusal := lineWith(stdout+"\n"+stderr, "ERROR")
	fig := headerFigures{TestPassed: test.Passed, Refused: err != nil,
		RefusalNamesBound: strings.Contains(refusal, fmt.Sprint(echobenchMaxSize))}
	f.Notes = append(f.Notes, "echobench's refusal: `"+refusal+"`")
	r, err := t.Echobench("frame-16MiB", loadArgs("epoll", "-frame", "-c", "1", "-size", fmt.Sprint(bigFrame))...)
	if err != nil {
		return f, err
	}
	fig.BigEchoed, fig.BigFailures = sumMessages(r.Runs), r.Summary.VerifyFailuresTotal
	f.Figures = []Figure{
		{Name: "largest length struct 'i' packs", Value: math.MaxInt32, Unit: "bytes", Note: "2 GiB − 1"},
		{Name: "largest length echobench's 4-byte unsigned frame field holds", Value: math.MaxUint32, Unit: "bytes", Note: "4 GiB − 1"},
		{Name: "largest message echobench sends (its own bound)", Value: echobenchMaxSize, Unit: "bytes"},
		{Name: "a message one byte larger refused", Value: b2f(fig.Refused), Unit: "bool"},
		{Name: fmt.Sprintf("%d MiB framed messages echoed", bigFrame>>20), Value: float64(fig.BigEchoed)},
		{Name: "wrong bytes, boundaries or order", Value: float64(fig.BigFailures)},
	}
	f.Verdict = judgeHeader(fig)
	return f, nil
}

// sumMessages is the messages echoed in the runs' windows.
func sumMessages(runs []report.Run) uint64 {
	var n uint64
	for _, r := range runs {
		n += r.Messages
	}
	return n
}

// lineWith is the first line of s that contains word, or the last line when none does.
func lineWith(s, word string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines {
		if strings.Contains(l, word) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// stickyFigures are claim 10's.
type stickyFigures struct {
	NaivePassed, ReassemblyPassed bool
	Echoed, Failures              uint64
}

func judgeSticky(f stickyFigures) Verdict {
	why := fmt.Sprintf("Naive-reader tests passed: %v; reassembly tests passed: %v; echobench -frame echoed %d messages with %d failures.",
		f.NaivePassed, f.ReassemblyPassed, f.Echoed, f.Failures)
	if f.NaivePassed && f.ReassemblyPassed && f.Echoed > 0 && f.Failures == 0 {
		return Verdict{Outcome: Holds, Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runSticky(t *Trial) (Finding, error) {
	var f Finding
	naive := t.GoTest("^TestNaiveReader", "./lesson/")
	json := t.GoTest("^TestJSONHeaderReassemblesCoalescedAndSplit$", "./lesson/")
	parser := t.GoTest("^TestFrameParserSplitAndMerged$", "./loadgen/")
	f.Tests = []TestRun{naive, json, parser}
	r, err := t.Echobench("frame-pipeline", loadArgs("epoll", "-frame", "-pipeline", "16", "-size", "64-65536", "-c", "10")...)
	if err != nil {
		return f, err
	}
	fig := stickyFigures{NaivePassed: naive.Passed, ReassemblyPassed: json.Passed && parser.Passed,
		Echoed: sumMessages(r.Runs), Failures: r.Summary.VerifyFailuresTotal}
	f.Figures = []Figure{
		{Name: "framed messages echoed, 64 B–64 KiB, 16 in flight per connection", Value: float64(fig.Echoed)},
		{Name: "wrong bytes, boundaries or order", Value: float64(fig.Failures)},
	}
	f.Verdict = judgeSticky(fig)
	return f, nil
}
