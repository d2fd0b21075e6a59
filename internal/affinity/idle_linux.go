package affinity

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// IdleThread locks the calling goroutine to its thread for good and gives that thread the
// SCHED_IDLE policy: it runs only when its CPUs have nothing else to run, and any other thread
// that wakes there preempts it at once. It is for work that shares a CPU with something whose
// timing it must not disturb, such as the CPU sampling that runs beside echobench's engine. The
// goroutine must not unlock the thread: it would hand it, policy and all, to other goroutines;
// when the goroutine returns the thread exits with it. The Go runtime starts new threads from a
// thread of its own rather than from a locked one, so no other thread inherits the policy.
func IdleThread() error {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr SCHED_IDLE: %w", err)
	}
	return nil
}
