package loadgen

// What a worker records, kept apart from the event loop: histograms and counters, no syscalls.

import "github.com/HdrHistogram/hdrhistogram-go"

// workerStats is what a worker measured; Run reads it after the worker has exited.
type workerStats struct {
	latency, uncorrected, connectLatency *hdrhistogram.Histogram
	scheduleLag                          *hdrhistogram.Histogram // open loop only
	seconds                              []secondStats

	messages, bytes, verifyFailures, reconnects uint64
	verifyFailuresTotal, incomplete             uint64
	established, failed                         int
	slotsEchoed                                 int // slots with an echo completed in the window
	connectErrors, ioErrors                     map[string]int
	totalSent, totalReceived, totalMessages     uint64
	kernelTimed                                 uint64 // completions timed by a kernel receive timestamp

	firstConnect, lastEstablished int64 // initial ramp; 0 when none
	windowEnd                     int64 // when this worker stopped counting
	allDead                       bool  // it stopped because every one of its slots had died
	err                           error // a failure of the loop itself (epoll_wait)
}

type secondStats struct {
	messages, bytes uint64
	latency         *hdrhistogram.Histogram // for the second's p99; coarser than the totals
}

// sampleRun is a run of equal latency samples bound for one histogram, not yet recorded. A
// pipelined connection's messages are queued in one fill and complete in one read, so they share
// one latency value, and RecordValues(v, n) records n of them for the cost of one: the histogram
// ends up exactly as if each had been recorded alone.
type sampleRun struct {
	h      *hdrhistogram.Histogram
	us     int64 // the run's value, in h's unit
	lastNS int64 // the last sample's latency in ns, which the common case compares against
	n      int64
}

// add appends a sample of ns nanoseconds for h, recording the run so far first if it is for
// another histogram or value. The common case, the very same ns as the previous sample, is kept
// small enough for the compiler to inline. It needs no check that a run is open: after a flush, h
// and lastNS still describe the value us holds, so a matching sample correctly starts a run of 1.
func (r *sampleRun) add(h *hdrhistogram.Histogram, ns int64) {
	if r.lastNS == ns && r.h == h {
		r.n++
		return
	}
	r.addSlow(h, ns)
}

// addSlow is add for a sample whose ns differs from the previous one: it may still round to the
// run's microsecond, and otherwise starts a new run.
func (r *sampleRun) addSlow(h *hdrhistogram.Histogram, ns int64) {
	us := clampMicros(h, ns)
	r.lastNS = ns
	if r.n > 0 && r.us == us && r.h == h {
		r.n++
		return
	}
	r.flush()
	r.h, r.us, r.n = h, us, 1
}

// flush records the run, if any.
func (r *sampleRun) flush() {
	if r.n > 0 {
		r.h.RecordValues(r.us, r.n)
		r.n = 0
	}
}

// recordMicros records a latency of ns nanoseconds in microseconds, clamped to the histogram's
// range so an outlier is counted rather than dropped.
func recordMicros(h *hdrhistogram.Histogram, ns int64) {
	h.RecordValue(clampMicros(h, ns))
}

// clampMicros converts ns nanoseconds to whole microseconds within h's range.
func clampMicros(h *hdrhistogram.Histogram, ns int64) int64 {
	return min(max(ns/1000, 0), h.HighestTrackableValue())
}

// newSecondHistogram is the per-second latency histogram: two significant digits are plenty for a
// p99 plotted over time, and it is an eighth the size of a full one.
func newSecondHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 100_000_000, 2)
}
