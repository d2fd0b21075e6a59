package affinity

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinPasses bounds how often PinProcess re-lists a process's threads. A thread created while we
// pin may have been cloned from a thread not yet pinned; each pass catches those, and a process
// that keeps creating threads from unpinned ones faster than we pin them is not something a
// bounded number of passes can fix anyway.
const pinPasses = 5

func set(cpus []int) unix.CPUSet {
	var s unix.CPUSet
	for _, c := range cpus {
		s.Set(c)
	}
	return s
}

// Of returns the CPUs process (or thread) pid may run on.
func Of(pid int) ([]int, error) {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &s); err != nil {
		return nil, fmt.Errorf("sched_getaffinity pid %d: %w", pid, err)
	}
	var cpus []int
	for c := 0; c < len(s)*64; c++ {
		if s.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Online returns the CPUs this process may run on now.
func Online() ([]int, error) {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < maxCPU; c++ {
		if s.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// PinProcess pins every thread of process pid to cpus and returns how many threads it pinned.
func PinProcess(pid int, cpus []int) (int, error) {
	mask := set(cpus)
	pinned := map[int]bool{}
	for range pinPasses {
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return len(pinned), fmt.Errorf("list threads of %d: %w", pid, err)
		}
		fresh := 0
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &mask); err != nil {
				// ESRCH: the thread exited after we listed it; there is nothing left to pin.
				if errors.Is(err, unix.ESRCH) {
					continue
				}
				return len(pinned), fmt.Errorf("sched_setaffinity tid %d of pid %d to CPUs %s: %w", tid, pid, Format(cpus), err)
			}
			pinned[tid] = true
			fresh++
		}
		if fresh == 0 {
			break
		}
	}
	return len(pinned), nil
}

// Check reports how many of process pid's threads run on exactly cpus, out of how many.
func Check(pid int, cpus []int) (onMask, total int, err error) {
	want := set(cpus)
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("list threads of %d: %w", pid, err)
	}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var got unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &got); err != nil {
			continue
		}
		total++
		if got == want {
			onMask++
		}
	}
	return onMask, total, nil
}

// PinThread pins the calling OS thread to cpus and returns a function that restores its previous
// mask. The caller must hold runtime.LockOSThread for as long as the mask matters: a child forked
// from this thread in between starts pinned, and everything it creates inherits the mask.
func PinThread(cpus []int) (restore func() error, err error) {
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	mask := set(cpus)
	if err := unix.SchedSetaffinity(0, &mask); err != nil {
		return nil, fmt.Errorf("sched_setaffinity CPUs %s: %w", Format(cpus), err)
	}
	return func() error {
		if err := unix.SchedSetaffinity(0, &saved); err != nil {
			return fmt.Errorf("restore thread affinity: %w", err)
		}
		return nil
	}, nil
}
