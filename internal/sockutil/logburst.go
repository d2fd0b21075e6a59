package sockutil

import (
	"sync"
	"time"
)

// LogAgainAfter is how often a condition that persists is logged again, with a count: once per
// failure would flood the log, since the failure repeats every retry until it goes away.
const LogAgainAfter = 10 * time.Second

// QuietBeforeEnd is how long a condition must not have recurred before End closes its burst. A
// server sitting at its fd limit while connections churn alternates failures with successes
// (each freed fd lets one accept through); ending the burst at every success would log two lines
// per closed connection, which is the flood the burst exists to prevent.
const QuietBeforeEnd = time.Second

// LogBurst rate-limits the log of a condition that repeats in bursts, such as EMFILE at accept:
// the first occurrence is logged at once, then at most every LogAgainAfter, and the end of the
// burst is logged with its count. Several threads may share one; the zero value is ready to use.
type LogBurst struct {
	mu     sync.Mutex
	count  int       // occurrences in the current burst; 0 outside a burst
	logged time.Time // when the burst was last logged
	last   time.Time // when it last occurred
	now    func() time.Time
}

func (b *LogBurst) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// Begin counts one occurrence and, if the rate limit allows, logs it through log.
func (b *LogBurst) Begin(log func(format string, args ...any), format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count++
	b.last = b.clock()
	if b.count == 1 || b.last.Sub(b.logged) >= LogAgainAfter {
		b.logged = b.last
		if b.count > 1 {
			format += " (%d times so far)"
			args = append(args, b.count)
		}
		log(format, args...)
	}
}

// End reports that the condition did not occur this time (an accept succeeded). It closes the
// burst, logging through log how many times the condition occurred, once the condition has not
// recurred for QuietBeforeEnd; sooner, the success is taken as part of the burst.
func (b *LogBurst) End(log func(format string, args ...any), format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count == 0 || b.clock().Sub(b.last) < QuietBeforeEnd {
		return
	}
	log(format+" (%d times in that burst)", append(args, b.count)...)
	b.count = 0
}
