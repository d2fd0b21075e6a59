package child

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// FDLimits are echoserver's two fd-limit flags, which tests and `make faults` use to run a
// server that runs out of file descriptors (EMFILE) on purpose. A parent cannot do it from
// outside: the Go runtime raises a process's soft RLIMIT_NOFILE to its hard limit as it starts,
// and a model sizes some of its bounds from the limit it sees at Start.
type FDLimits struct {
	// NoFile, if above zero, is the RLIMIT_NOFILE (soft and hard) set before the server starts.
	NoFile uint64
	// Slots, if above zero, lowers RLIMIT_NOFILE once the server listens so that exactly Slots
	// more fds can be opened: the server can then hold that many connections and no more.
	Slots int
}

func (l *FDLimits) register(fs *flag.FlagSet) {
	fs.Uint64Var(&l.NoFile, "nofile", l.NoFile, "set RLIMIT_NOFILE to N before the server starts, to test fd exhaustion (0 = leave it)")
	fs.IntVar(&l.Slots, "fdslots", l.Slots, "lower RLIMIT_NOFILE once the server listens to leave exactly N fds free, to test fd exhaustion (0 = leave it)")
}

// Args returns the flags that set l in the child.
func (l FDLimits) Args() []string {
	var args []string
	if l.NoFile > 0 {
		args = append(args, "-nofile="+strconv.FormatUint(l.NoFile, 10))
	}
	if l.Slots > 0 {
		args = append(args, "-fdslots="+strconv.Itoa(l.Slots))
	}
	return args
}

// beforeStart applies NoFile.
func (l FDLimits) beforeStart() error {
	if l.NoFile == 0 {
		return nil
	}
	lim := unix.Rlimit{Cur: l.NoFile, Max: l.NoFile}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit RLIMIT_NOFILE %d: %w", l.NoFile, err)
	}
	return nil
}

// afterStart applies Slots.
func (l FDLimits) afterStart() error {
	if l.Slots == 0 {
		return nil
	}
	open, err := openFDs()
	if err != nil {
		return err
	}
	limit := fdLimitLeaving(open, l.Slots)
	lim := unix.Rlimit{Cur: limit, Max: limit}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit RLIMIT_NOFILE %d to leave %d fds free: %w", limit, l.Slots, err)
	}
	return nil
}

// openFDs returns the set of fds this process has open, leaving out the one it opens to list
// them, which is closed again by the time the caller uses the set.
func openFDs() (map[int]bool, error) {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing /proc/self/fd: %w", err)
	}
	own := int(dir.Fd())
	open := make(map[int]bool, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil {
			return nil, fmt.Errorf("/proc/self/fd entry %q: %w", name, err)
		}
		if fd != own {
			open[fd] = true
		}
	}
	return open, nil
}

// fdLimitLeaving returns the smallest RLIMIT_NOFILE under which exactly slots fd numbers are
// free. The limit bounds fd numbers, not the count of open fds: the kernel hands out the lowest
// free number, and refuses one at or above the limit. So the free numbers below the limit are
// what can still be opened, holes in the fd table included, and an open fd at or above the limit
// takes no slot.
func fdLimitLeaving(open map[int]bool, slots int) uint64 {
	free := 0
	for fd := 0; ; fd++ {
		if open[fd] {
			continue
		}
		free++
		if free == slots {
			return uint64(fd + 1)
		}
	}
}
