package blocking

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A goroutine that returns while locked to its OS thread takes the thread with it, but the
// runtime tears the thread down only after the goroutine's deferred calls have run, so a
// WaitGroup alone would let Close return while the last threads are still exiting. exitingThreads
// remembers the ids of threads whose goroutines have finished, until the kernel no longer lists
// them in /proc/self/task, so that Close can wait for them.
type exitingThreads struct {
	mu   sync.Mutex
	tids map[int]struct{}
}

// sweepAt bounds exitingThreads: once it holds this many ids, adding one first forgets the
// threads that are gone, so a server that has served a million connections does not remember a
// million threads. What a sweep keeps are threads still exiting at that moment, at most one per
// connection closing at once.
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
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tids == nil {
		e.tids = map[int]struct{}{}
	}
	if len(e.tids) >= sweepAt {
		e.sweepLocked()
	}
	e.tids[tid] = struct{}{}
}

func (e *exitingThreads) sweepLocked() {
	for tid := range e.tids {
		if threadGone(tid) {
			delete(e.tids, tid)
		}
	}
}

// waitGone returns once every recorded thread has exited, or an error after threadExitTimeout.
func (e *exitingThreads) waitGone() error {
	deadline := time.Now().Add(threadExitTimeout)
	for {
		e.mu.Lock()
		e.sweepLocked()
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

// threadGone reports whether thread tid of this process has exited. Linux releases a thread
// other than the leader as soon as it exits, which removes it from /proc/self/task.
func threadGone(tid int) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid))
	return errors.Is(err, fs.ErrNotExist)
}
