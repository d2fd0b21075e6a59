package sockutil

import (
	"fmt"
	"strings"
	"sync"
	"testing"
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

// TestLogBurst checks that a burst logs once at its start and once at its end with its count,
// however many times it repeats within LogAgainAfter, and that the next burst starts afresh.
func TestLogBurst(t *testing.T) {
	var l logLines
	var b LogBurst
	b.End(l.log, "works again") // no burst open: nothing to say
	for range 1000 {
		b.Begin(l.log, "accept: %v", "EMFILE")
	}
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
	var b LogBurst
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Begin(l.log, "accept: EMFILE")
			}
		})
	}
	wg.Wait()
	b.End(l.log, "works again")
	want := []string{"accept: EMFILE", "works again (800 times in that burst)"}
	if strings.Join(l.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%q\nwant:\n%q", l.lines, want)
	}
}
