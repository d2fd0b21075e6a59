package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Steal is each CPU's steal time so far, indexed by CPU number: how long the hypervisor kept
// that virtual CPU off its physical one while the guest wanted to run. A CPU missing from
// /proc/stat (offline) reads 0.
//
// Why it is read: on a shared virtual machine a stolen CPU is a pause that no process in the
// guest sees in its own CPU time. A send that falls due while the client's CPU is stolen is late
// by the rest of the pause, and an echo due from a stolen server CPU is slow by it, so a run's
// latency tails can be the host's. /proc/stat counts steal from the paravirtual steal clock, in
// USER_HZ ticks (10 ms), which over a run of seconds resolves a fraction of a percent.
type Steal []time.Duration

// ReadSteal reads every CPU's steal time from /proc/stat.
func ReadSteal() (Steal, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseSteal(b)
}

// parseSteal reads the "cpuN user nice system idle iowait irq softirq steal ..." lines of
// /proc/stat. A kernel too old to count steal has fewer fields; its CPUs read 0.
func parseSteal(b []byte) (Steal, error) {
	var s Steal
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || !bytes.HasPrefix(f[0], []byte("cpu")) || len(f[0]) == 3 {
			continue // not a CPU line, or the all-CPU total
		}
		cpu, err := strconv.Atoi(string(f[0][3:]))
		if err != nil || cpu < 0 {
			return nil, fmt.Errorf("parse /proc/stat: bad CPU line %q", sc.Text())
		}
		var v uint64
		if len(f) > 8 {
			if v, err = strconv.ParseUint(string(f[8]), 10, 64); err != nil {
				return nil, fmt.Errorf("parse /proc/stat: steal of cpu%d: %w", cpu, err)
			}
		}
		for len(s) <= cpu {
			s = append(s, 0)
		}
		s[cpu] = ticks(v)
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("parse /proc/stat: no per-CPU lines")
	}
	return s, nil
}

// On sums the steal of the given CPUs; nil means every CPU.
func (s Steal) On(cpus []int) time.Duration {
	var d time.Duration
	if cpus == nil {
		for _, v := range s {
			d += v
		}
		return d
	}
	for _, c := range cpus {
		if c >= 0 && c < len(s) {
			d += s[c]
		}
	}
	return d
}
