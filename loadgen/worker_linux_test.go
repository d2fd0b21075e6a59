package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMergeAddsUpWorkers checks merge against histograms recorded in one piece.
func TestMergeAddsUpWorkers(t *testing.T) {
	sh := &shared{cfg: Config{Rate: 100, Duration: 3 * time.Second}}
	sh.measureStart.Store(int64(time.Second))
	all, allUncorrected := NewHistogram(), NewHistogram()
	var workers []*worker
	for i := range 3 {
		w := &worker{st: workerStats{
			latency: NewHistogram(), uncorrected: NewHistogram(), connectLatency: NewHistogram(),
			connectErrors: map[string]int{"ECONNREFUSED": i}, ioErrors: map[string]int{"EOF": 1},
			established: 10, messages: 1000, windowEnd: int64(time.Second) + int64(i+1)*int64(time.Second),
			allDead: i != 1,
		}}
		for v := range 1000 {
			us := int64(v*(i+1)*37) % 50000
			w.st.latency.RecordValue(us)
			w.st.uncorrected.RecordValue(us / 2)
			all.RecordValue(us)
			allUncorrected.RecordValue(us / 2)
		}
		for s := range i + 1 {
			sec := secondStats{messages: 10, latency: newSecondHistogram()}
			sec.latency.RecordValue(int64(100 * (s + 1)))
			w.st.seconds = append(w.st.seconds, sec)
		}
		workers = append(workers, w)
	}
	stats := make([]*workerStats, len(workers))
	for i, w := range workers {
		stats[i] = &w.st
	}
	res := merge(sh, stats)
	if !res.Latency.Equals(all) || !res.Uncorrected.Equals(allUncorrected) {
		t.Errorf("merged histograms differ from the histograms of all values")
	}
	for _, q := range []float64{50, 90, 99, 99.9, 100} {
		if got, want := res.Latency.ValueAtQuantile(q), all.ValueAtQuantile(q); got != want {
			t.Errorf("p%v: merged %d, whole %d", q, got, want)
		}
	}
	if res.Messages != 3000 || res.Established != 30 || res.ConnectErrors["ECONNREFUSED"] != 3 || res.IOErrors["EOF"] != 3 {
		t.Errorf("counts: %d messages, %d established, %v, %v", res.Messages, res.Established, res.ConnectErrors, res.IOErrors)
	}
	if res.ServerGone {
		t.Error("ServerGone although one worker still had connections")
	}
	if res.Elapsed != 3*time.Second {
		t.Errorf("elapsed %v, want the longest worker's 3s", res.Elapsed)
	}
	if len(res.PerSecond) != 3 || res.PerSecond[0].Messages != 30 || res.PerSecond[2].Messages != 10 || res.PerSecond[2].P99us < 290 {
		t.Errorf("per second: %+v", res.PerSecond)
	}
}

func TestEncodeFramesResumesMidStream(t *testing.T) {
	// conn.encodeFrames must regenerate exactly the frame bytes from any unsent offset, whatever
	// the scratch buffer size, because a partial write can stop anywhere.
	sizes := []int{12, 13, 40, 70000, 12, 200}
	c := conn{streamID: 7, inflight: make([]message, len(sizes))}
	var payloads []int
	for _, s := range sizes {
		m := c.push()
		*m = message{end: c.queued + uint64(s), size: uint32(s)}
		c.queued += uint64(s)
		c.msgIndex++
		payloads = append(payloads, s-frameHeaderLen)
	}
	want, _ := frameStream(payloads)
	for _, bufSize := range []int{1, 5, 12, 100, 65536} {
		c.sent = 0
		var got []byte
		buf := make([]byte, bufSize)
		for c.sent < c.queued {
			n := c.encodeFrames(buf)
			if n == 0 {
				t.Fatalf("buffer %d: no progress at offset %d", bufSize, c.sent)
			}
			// Write only part of it now and then, like a full socket buffer would.
			if n > 3 && c.sent%2 == 1 {
				n = n / 2
			}
			got = append(got, buf[:n]...)
			c.sent += uint64(n)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("buffer %d: encoded stream differs from the reference encoding", bufSize)
		}
	}
}

func TestLockedWorkerThreadExits(t *testing.T) {
	// Run's promise that no engine thread outlives it rests on a goroutine that returns while
	// locked to its thread taking the thread with it.
	w := &worker{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		w.tid = unix.Gettid()
	}()
	<-done
	waitTIDsGone([]int{w.tid})
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", w.tid)); err == nil {
		t.Errorf("thread %d still exists after its locked goroutine returned", w.tid)
	}
}
