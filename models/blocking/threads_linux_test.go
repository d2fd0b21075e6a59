package blocking

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStartTime(t *testing.T) {
	// A thread's name may hold spaces and parentheses; field 22 is counted from the last ')'.
	const stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 90 0 0 0 0 0 0 0 20 0 3 0 987654 1000 20 0\n"
	got, err := parseStartTime(stat)
	if err != nil || got != 987654 {
		t.Errorf("parseStartTime = %d, %v; want 987654", got, err)
	}
	for _, bad := range []string{"", "4242 (a) S 1 2 3", "4242 (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x"} {
		if got, err := parseStartTime(bad); err == nil {
			t.Errorf("parseStartTime(%q) = %d, want an error", bad, got)
		}
	}
}

// TestThreadGoneReusedID checks that a recorded thread id now listed with another start time
// counts as gone: the kernel gave the id of the thread we recorded to a newer one.
func TestThreadGoneReusedID(t *testing.T) {
	done := make(chan struct{})
	tids := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		<-done
	}()
	tid := <-tids
	defer close(done)
	start, err := threadStartTime(tid)
	if err != nil {
		t.Fatalf("start time of live thread %d: %v", tid, err)
	}
	if threadGone(tid, start) {
		t.Errorf("live thread %d with its own start time reported gone", tid)
	}
	if threadGone(tid, 0) {
		t.Errorf("live thread %d with an unknown start time reported gone", tid)
	}
	if !threadGone(tid, start+1) {
		t.Errorf("thread %d listed with another start time than recorded was not reported gone", tid)
	}
}

// TestThreadGoneExited checks that a thread whose goroutine ended while locked is reported gone
// once the runtime has torn it down, which is what Close waits for.
func TestThreadGoneExited(t *testing.T) {
	var e exitingThreads
	// The goroutine may land on the main thread, which the runtime parks rather than destroys
	// (add skips it); it is then parked for good, so the second try runs on another thread.
	tid := unix.Getpid()
	for try := 0; try < 2 && tid == unix.Getpid(); try++ {
		tids := make(chan int)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			tid := unix.Gettid()
			e.add(tid)
			tids <- tid
		}()
		tid = <-tids
	}
	if tid == unix.Getpid() {
		t.Fatalf("both goroutines ran on the main thread")
	}
	if err := e.waitGone(); err != nil {
		t.Fatalf("waitGone: %v", err)
	}
	if _, err := threadStartTime(tid); err == nil {
		t.Errorf("thread %d still listed after waitGone returned", tid)
	}
}
