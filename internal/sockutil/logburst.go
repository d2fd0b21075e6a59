package sockutil

import (
	"sync"
	"time"
)

// LogAgainAfter is how often a condition that persists is logged again, with a count: once per
// failure would flood the log, since the failure repeats every retry until it goes away.
const LogAgainAfter = 10 * time.Second

// LogBurst rate-limits the log of a condition that repeats in bursts, such as EMFILE at accept:
// the first occurrence is logged at once, then at most every LogAgainAfter, and the end of the
// burst is logged with its count. Several threads may share one; the zero value is ready to use.
type LogBurst struct {
	mu     sync.Mutex
	count  int // occurrences in the current burst; 0 outside a burst
	logged time.Time
}

// Begin counts one occurrence and, if the rate limit allows, logs it through log.
func (b *LogBurst) Begin(log func(format string, args ...any), format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count++
	if b.count == 1 || time.Since(b.logged) >= LogAgainAfter {
		b.logged = time.Now()
		if b.count > 1 {
			format += " (%d times so far)"
			args = append(args, b.count)
		}
		log(format, args...)
	}
}

// End closes a burst, if one is open, and logs through log how many times it occurred.
func (b *LogBurst) End(log func(format string, args ...any), format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count == 0 {
		return
	}
	log(format+" (%d times in that burst)", append(args, b.count)...)
	b.count = 0
}
