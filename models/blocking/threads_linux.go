package blocking

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A goroutine that returns while locked to its OS thread takes the thread with it, but the
// runtime tears the thread down only after the goroutine's deferred calls have run, so a
// WaitGroup alone would let Close return while the last threads are still exiting. exitingThreads
// remembers the threads whose goroutines have finished, until the kernel no longer lists them in
// /proc/self/task, so that Close can wait for them.
//
// A thread id alone does not name a thread for long: the kernel hands a dead thread's id to the
// next thread or process once its pid counter wraps (pid_max is 32768 by default), and a server
// that churns through connections creates threads fast. A recorded id that now belongs to a new,
// live thread of ours would make Close wait threadExitTimeout and then report a false error. So
// each id is recorded with the thread's start time, and a thread listed under that id with a
// different start time is a newcomer: the one we recorded is gone.
type exitingThreads struct {
	mu   sync.Mutex
	tids map[int]uint64 // thread id → its start time, in clock ticks since boot (0: unknown)
}

// sweepAt bounds exitingThreads: once it holds this many ids, the thread that adds the last one
// forgets the threads that are gone, so a server that has served a million connections does not
// remember a million threads. What a sweep keeps are threads still exiting at that moment, at most
// one per connection closing at once. Sweeping only this seldom is safe because the start times
// tell a reused id apart; it keeps the cost of a sweep (a /proc read per id) off most
// connections. The sweep runs outside the lock, on ids taken out of the set: every exiting
// thread passes through add, and one that waited on the lock for a sweep would hold its thread
// meanwhile, so under connection churn threads would pile up behind it.
const sweepAt = 256

// threadExitTimeout is how long Close waits for finished threads to disappear. A thread exits
// within microseconds of its goroutine; one still listed after this long is a bug worth
// reporting rather than a hang.
const threadExitTimeout = 10 * time.Second

// add records the calling goroutine's thread as about to exit. It is the last thing a locked
// goroutine does.
func (e *exitingThreads) add(tid int) {
	if tid == unix.Getpid() {
		// The runtime never destroys the main thread: a goroutine that ends while locked to it
		// leaves it parked for good instead. There is no exit to wait for.
		return
	}
	// The calling thread is alive, so its stat file can be read. Should that fail all the same,
	// 0 makes threadGone fall back to whether the id is listed at all, which errs on the side
	// of waiting.
	start, _ := threadStartTime(tid)
	e.mu.Lock()
	if e.tids == nil {
		e.tids = map[int]uint64{}
	}
	e.tids[tid] = start
	var batch map[int]uint64
	if len(e.tids) >= sweepAt {
		batch, e.tids = e.tids, make(map[int]uint64, sweepAt)
	}
	e.mu.Unlock()
	if batch == nil {
		return
	}
	// waitGone cannot miss the ids out of the set meanwhile: Close calls it only after every
	// locked goroutine has returned from add.
	sweep(batch)
	e.mu.Lock()
	for tid, start := range batch {
		e.tids[tid] = start
	}
	e.mu.Unlock()
}

// sweep deletes from tids the threads that have exited.
func sweep(tids map[int]uint64) {
	for tid, start := range tids {
		if threadGone(tid, start) {
			delete(tids, tid)
		}
	}
}

// waitGone returns once every recorded thread has exited, or an error after threadExitTimeout.
func (e *exitingThreads) waitGone() error {
	deadline := time.Now().Add(threadExitTimeout)
	for {
		e.mu.Lock()
		sweep(e.tids)
		left := len(e.tids)
		e.mu.Unlock()
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d OS threads still alive %v after their goroutines returned", left, threadExitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// threadGone reports whether the thread of this process that had id tid and started at start
// (clock ticks since boot; 0 if unknown) has exited. Linux releases a thread other than the leader
// as soon as it exits, which removes it from /proc/self/task; a thread listed under the same id
// with another start time is a later thread that was given the id again.
func threadGone(tid int, start uint64) bool {
	now, err := threadStartTime(tid)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil || start == 0 {
		return false // cannot tell: keep waiting, and let waitGone's timeout report it
	}
	return now != start
}

// threadStartTime reads when thread tid of this process started, field 22 of
// /proc/self/task/<tid>/stat, in clock ticks since boot.
func threadStartTime(tid int) (uint64, error) {
	path := "/proc/self/task/" + strconv.Itoa(tid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseStartTime(string(b))
}

// parseStartTime extracts field 22 (starttime) from the text of a /proc stat file. Field 2 is the
// thread's name in parentheses, which may itself hold spaces and parentheses, so the fields are
// counted from the last ')': field 3 (state) is the first after it.
func parseStartTime(stat string) (uint64, error) {
	const startTimeField = 22
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("proc stat %q: no ')' after the thread name", stat)
	}
	fields := strings.Fields(stat[end+1:])
	if i := startTimeField - 3; i < len(fields) {
		start, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat field %d: %w", startTimeField, err)
		}
		return start, nil
	}
	return 0, fmt.Errorf("proc stat %q: %d fields after the name, want at least %d", stat, len(fields), startTimeField-2)
}
