package sockutil

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// TestLogBurst checks that a burst logs once at its start and once at its end with its count,
// however many times it repeats within LogAgainAfter, that successes between failures do not end
// it, and that the next burst starts afresh.
func TestLogBurst(t *testing.T) {
	var l logLines
	clock := &fakeClock{t: time.Unix(1000, 0)}
	b := LogBurst{now: clock.now}
	b.End(l.log, "works again") // no burst open: nothing to say
	for range 1000 {
		b.Begin(l.log, "accept: %v", "EMFILE")
		b.End(l.log, "works again") // a freed fd let one accept through: still the same burst
		clock.t = clock.t.Add(time.Millisecond)
	}
	clock.t = clock.t.Add(QuietBeforeEnd)
	b.End(l.log, "works again")
	b.End(l.log, "works again")
	b.Begin(l.log, "accept: %v", "ENFILE")
	want := []string{"accept: EMFILE", "works again (1000 times in that burst)", "accept: ENFILE"}
	if strings.Join(l.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%q\nwant:\n%q", l.lines, want)
	}
}

// TestLogBurstShared runs Begin from several goroutines at once, as blocking's pool threads do;
// -race checks the locking, and the count must be exact.
func TestLogBurstShared(t *testing.T) {
	var l logLines
	clock := &fakeClock{t: time.Unix(1000, 0)}
	b := LogBurst{now: clock.now}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Begin(l.log, "accept: EMFILE")
			}
		})
	}
	wg.Wait()
	clock.t = clock.t.Add(QuietBeforeEnd)
	b.End(l.log, "works again")
	want := []string{"accept: EMFILE", "works again (800 times in that burst)"}
	if strings.Join(l.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%q\nwant:\n%q", l.lines, want)
	}
}
