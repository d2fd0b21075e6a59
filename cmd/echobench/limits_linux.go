package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// fdSlack is the descriptors echobench needs besides its connections: stdio, the pipes to the
// server child, the engine's epoll fds, and the /proc files the sampler opens.
const fdSlack = 64

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and checks that conns connections
// fit. The server child inherits the raised limit. syscall.Setrlimit (not x/sys) is used on
// purpose: it tells the Go runtime not to restore the original soft limit in children.
func raiseNoFile(conns int) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit NOFILE to %d: %w", lim.Max, err)
		}
	}
	if need := uint64(conns) + fdSlack; need > lim.Cur {
		return lim.Cur, fmt.Errorf("-c %d needs about %d file descriptors but RLIMIT_NOFILE is %d (hard limit); lower -c, or raise the hard limit (ulimit -Hn, limits.conf, systemd LimitNOFILE)", conns, need, lim.Cur)
	}
	return lim.Cur, nil
}

// ephemeralPorts returns how many local ports the kernel hands out for outgoing connections: the
// most connections one client address can hold open to one server address.
func ephemeralPorts() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, fmt.Errorf("read ip_local_port_range: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("parse ip_local_port_range %q", b)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse ip_local_port_range %q", b)
	}
	return hi - lo + 1, nil
}

// isTerminal reports whether fd is a terminal, for the progress line.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
