package affinity

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIdleThread checks that the thread IdleThread locks runs SCHED_IDLE and that only the
// goroutine that called it runs there: another goroutine's thread keeps its normal policy.
func TestIdleThread(t *testing.T) {
	policy := func() uint32 {
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			t.Error(err)
			return 0
		}
		return attr.Policy
	}
	done := make(chan uint32)
	go func() {
		if err := IdleThread(); err != nil {
			t.Error(err)
		}
		done <- policy()
	}()
	if got := <-done; got != unix.SCHED_IDLE {
		t.Errorf("policy after IdleThread %d, want SCHED_IDLE (%d)", got, unix.SCHED_IDLE)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if got := policy(); got == unix.SCHED_IDLE {
		t.Error("another goroutine's thread is SCHED_IDLE too")
	}
}
