package process

import (
	"sync"
	"time"

	"echobench/server"
)

// logAgainAfter is how often a condition that persists is logged again, with a count: once per
// failure would flood the log, since the failure repeats every retry until it goes away.
const logAgainAfter = 10 * time.Second

// logBurst rate-limits the log of a condition that repeats in bursts, such as EMFILE at accept:
// the first occurrence is logged at once, then at most every logAgainAfter, and the end of the
// burst is logged with its count. Several threads may share one.
type logBurst struct {
	mu     sync.Mutex
	count  int // occurrences in the current burst; 0 outside a burst
	logged time.Time
}

// begin counts one occurrence and logs it if the rate limit allows.
func (b *logBurst) begin(cfg server.Config, format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count++
	if b.count == 1 || time.Since(b.logged) >= logAgainAfter {
		b.logged = time.Now()
		if b.count > 1 {
			format += " (%d times so far)"
			args = append(args, b.count)
		}
		cfg.Log(format, args...)
	}
}

// end closes a burst, if one is open, and logs how many times it occurred.
func (b *logBurst) end(cfg server.Config, format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count == 0 {
		return
	}
	cfg.Log(format+" (%d times in that burst)", append(args, b.count)...)
	b.count = 0
}
