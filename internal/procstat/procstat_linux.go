package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. The kernel fixes it at 100
// on every architecture Go supports on Linux, whatever CONFIG_HZ is; Go has no sysconf to ask.
const clockTicks = 100

// samplerMaxShare bounds the sampler's own cost: after a sample that took d, the next one waits
// at least d*samplerMaxShare, so reading a huge tree uses at most a fifth of a core. The sampler
// runs in echobench, so its cost shows in the client's CPU, not the server's.
const samplerMaxShare = 4

var pageSize = uint64(os.Getpagesize())

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTicks }

// CPU is the user plus system time of the process's own threads (children not included).
func (p Proc) CPU() time.Duration { return ticks(p.UserTicks + p.SysTicks) }

// ReadProc reads one process's /proc/PID/stat. The resident size comes from stat's rss field, so
// one file per process is enough; HWMBytes is filled only by ReadStatus.
func ReadProc(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return Proc{}, fmt.Errorf("read /proc/%d/stat: %w", pid, ErrGone)
		}
		return Proc{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return parseStat(pid, b)
}

// parseStat parses /proc/PID/stat. The command name (field 2) is in parentheses and may itself
// contain spaces and parentheses, so the fields are counted from the last ')'.
func parseStat(pid int, b []byte) (Proc, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 > len(b) {
		return Proc{}, fmt.Errorf("parse /proc/%d/stat: no command field", pid)
	}
	f := bytes.Fields(b[end+2:])
	// f[0] is field 3 (state) of proc(5), so field N is f[N-3].
	const rssField = 24 - 3
	if len(f) <= rssField {
		return Proc{}, fmt.Errorf("parse /proc/%d/stat: %d fields, want more than %d", pid, len(f)+2, rssField+3)
	}
	num := func(i int) uint64 {
		n, _ := strconv.ParseUint(string(f[i]), 10, 64)
		return n
	}
	p := Proc{
		PID:        pid,
		PPID:       int(num(4 - 3)),
		State:      f[0][0],
		UserTicks:  num(14 - 3),
		SysTicks:   num(15 - 3),
		CUserTicks: num(16 - 3),
		CSysTicks:  num(17 - 3),
		Threads:    int(num(20 - 3)),
		RSSBytes:   num(rssField) * pageSize,
	}
	return p, nil
}

// Status holds the /proc/PID/status lines procstat uses.
type Status struct {
	RSSBytes    uint64
	HWMBytes    uint64
	Threads     int
	Voluntary   uint64 // of this one task (for /proc/PID/status: the main thread only)
	Involuntary uint64
}

// ReadStatus reads /proc/PID/status, or /proc/PID/task/TID/status when given that path's pid
// part, e.g. "1234/task/1240".
func ReadStatus(proc string) (Status, error) {
	b, err := os.ReadFile("/proc/" + proc + "/status")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return Status{}, fmt.Errorf("read /proc/%s/status: %w", proc, ErrGone)
		}
		return Status{}, fmt.Errorf("read /proc/%s/status: %w", proc, err)
	}
	var s Status
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		fields := bytes.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(string(fields[0]), 10, 64)
		switch string(key) {
		case "VmRSS":
			s.RSSBytes = n * 1024
		case "VmHWM":
			s.HWMBytes = n * 1024
		case "Threads":
			s.Threads = int(n)
		case "voluntary_ctxt_switches":
			s.Voluntary = n
		case "nonvoluntary_ctxt_switches":
			s.Involuntary = n
		}
	}
	return s, nil
}

// taskDir opens a process's /proc/PID/task and lists its thread ids' names; the caller closes it.
func taskDir(pid int) (*os.File, []string, error) {
	dir, err := os.Open(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("list /proc/%d/task: %w", pid, ErrGone)
		}
		return nil, nil, fmt.Errorf("list /proc/%d/task: %w", pid, err)
	}
	names, err := dir.Readdirnames(-1)
	if err != nil {
		dir.Close()
		return nil, nil, fmt.Errorf("list /proc/%d/task: %w", pid, err)
	}
	return dir, names, nil
}

// Tasks lists the thread ids of a process.
func Tasks(pid int) ([]int, error) {
	dir, names, err := taskDir(pid)
	if err != nil {
		return nil, err
	}
	dir.Close()
	tids := make([]int, 0, len(names))
	for _, name := range names {
		if tid, err := strconv.Atoi(name); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// Children lists a process's direct children: the union of /proc/PID/task/TID/children over its
// threads, since the kernel files each child under the thread that forked it. Each file is opened
// relative to the task directory, so the path is not walked from /proc again for every thread.
func Children(pid int) ([]int, error) {
	dir, tids, err := taskDir(pid)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	var kids []int
	buf := make([]byte, 4096)
	for _, tid := range tids {
		b, err := readAt(int(dir.Fd()), tid+"/children", buf)
		if err != nil {
			// The thread exited between the listing and the read; its children, if any, were
			// re-parented to another thread of the process and show up there.
			continue
		}
		buf = b[:0]
		for f := range bytes.FieldsSeq(b) {
			if kid, err := strconv.Atoi(string(f)); err == nil {
				kids = append(kids, kid)
			}
		}
	}
	return kids, nil
}

// readAt reads the whole file at name under the directory dirfd into buf, growing it as needed.
func readAt(dirfd int, name string, buf []byte) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// Descendants returns root and every live descendant of it, root first.
func Descendants(root int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", root)); err != nil {
		return nil, fmt.Errorf("process %d: %w", root, ErrGone)
	}
	// seen guards against a pid reused while we walk: a cycle would otherwise never end.
	seen := map[int]bool{root: true}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		kids, err := Children(tree[i])
		if err != nil {
			return tree, err
		}
		for _, k := range kids {
			if !seen[k] {
				seen[k] = true
				tree = append(tree, k)
			}
		}
	}
	return tree, nil
}

// SampleTree reads the whole tree under root once. With switches it also reads every thread's
// status for context switches, which costs one file per thread.
func SampleTree(root int, switches bool) (Tree, uint64, error) {
	pids, err := Descendants(root)
	if err != nil && len(pids) == 0 {
		return Tree{}, 0, err
	}
	t := Tree{Time: time.Now()}
	var user, sys uint64
	for _, pid := range pids {
		p, err := ReadProc(pid)
		if err != nil {
			if pid == root {
				return Tree{}, 0, err
			}
			// A descendant exited after the walk; if it was reaped its CPU is now in its
			// parent's cutime, which we read below or already have.
			continue
		}
		t.Processes++
		t.Threads += p.Threads
		t.RSSBytes += p.RSSBytes
		user += p.UserTicks + p.CUserTicks
		sys += p.SysTicks + p.CSysTicks
		if switches {
			tids, _ := Tasks(pid)
			for _, tid := range tids {
				st, err := ReadStatus(fmt.Sprintf("%d/task/%d", pid, tid))
				if err != nil {
					continue
				}
				t.Voluntary += st.Voluntary
				t.Involuntary += st.Involuntary
			}
		}
	}
	t.User, t.Sys = ticks(user), ticks(sys)
	var hwm uint64
	if st, err := ReadStatus(strconv.Itoa(root)); err == nil {
		hwm = st.HWMBytes
	}
	return t, hwm, nil
}

// Pace returns how long to wait before the next sample, after one that took took.
func Pace(took time.Duration) time.Duration {
	return max(SampleInterval, took*samplerMaxShare)
}

// Sampler samples a process tree in the background and keeps the peaks.
type Sampler struct {
	root int
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	peaks Peaks
	last  Tree
	err   error // the last sampling error, such as ErrGone once the root has exited
}

// NewSampler returns a sampler for the tree under root. Call Start to sample in the background.
func NewSampler(root int) *Sampler {
	return &Sampler{root: root, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start samples every SampleInterval (longer if sampling itself is slow) until Stop.
func (s *Sampler) Start() {
	go func() {
		defer close(s.done)
		for {
			began := time.Now()
			s.Sample(false)
			wait := Pace(time.Since(began))
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
		}
	}()
}

// Sample takes one sample now, folds it into the peaks and returns it.
func (s *Sampler) Sample(switches bool) (Tree, error) {
	t, hwm, err := SampleTree(s.root, switches)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		return s.last, err
	}
	if s.peaks.Samples > 0 {
		t = keepCumulative(s.last, t)
	}
	s.peaks.fold(t, hwm)
	s.last = t
	return t, nil
}

// keepCumulative returns t with its CPU times raised to at least prev's. CPU used is cumulative
// and cannot shrink, but a sample can read less than the one before it: the walk reads a parent
// before its children, so a child that its parent reaps between the two reads is in neither (the
// parent's cutime/cstime was read before the reap added it; the child's own stat is gone by the
// time it is read). The next sample finds that CPU in the parent's cutime again, so the dip is a
// reading artefact, and clamping keeps a window's CPU (a difference of two samples) from coming
// out short or negative because of it.
func keepCumulative(prev, t Tree) Tree {
	t.User = max(t.User, prev.User)
	t.Sys = max(t.Sys, prev.Sys)
	return t
}

// Stop ends background sampling and returns the peaks. Only call it after Start.
func (s *Sampler) Stop() Peaks {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return s.Peaks()
}

// Peaks returns the peaks seen so far.
func (s *Sampler) Peaks() Peaks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peaks
}

// Last returns the last successful sample and the last error, if any.
func (s *Sampler) Last() (Tree, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.err
}

// Usage is CPU and context switches from getrusage or wait4.
type Usage struct {
	User        time.Duration
	Sys         time.Duration
	MaxRSSBytes uint64
	Voluntary   uint64
	Involuntary uint64
}

// CPU is user plus system time.
func (u Usage) CPU() time.Duration { return u.User + u.Sys }

// FromRusage converts a kernel rusage.
func FromRusage(ru *syscall.Rusage) Usage {
	if ru == nil {
		return Usage{}
	}
	return Usage{
		User:        time.Duration(ru.Utime.Nano()),
		Sys:         time.Duration(ru.Stime.Nano()),
		MaxRSSBytes: uint64(ru.Maxrss) * 1024, // Linux reports ru_maxrss in kilobytes
		Voluntary:   uint64(ru.Nvcsw),
		Involuntary: uint64(ru.Nivcsw),
	}
}

// Self returns this process's own usage so far, every thread included.
func Self() (Usage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return Usage{}, fmt.Errorf("getrusage self: %w", err)
	}
	return FromRusage(&ru), nil
}

// ThreadCPU is the CPU time the calling thread has used so far (CLOCK_THREAD_CPUTIME_ID), or 0
// if the clock cannot be read. It measures what a piece of work cost in CPU, which wall time
// cannot when the thread waited for its CPU.
func ThreadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
