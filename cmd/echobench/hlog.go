package main

// -hlog: the runs' corrected latency, second by second, as an HdrHistogram interval log.

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"echobench/loadgen"
)

// writeHlogFile writes results' interval log to path.
func writeHlogFile(path string, results []*loadgen.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-hlog: %w", err)
	}
	bw := bufio.NewWriter(f)
	err = writeHlog(bw, results)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("-hlog: write %s: %w", path, ferr)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("-hlog: close %s: %w", path, cerr)
	}
	return err
}

// writeHlog writes one interval per measured second of each run (loadgen.Result.PerSecond), the
// runs one after the other, with hdrhistogram-go's HistogramLogWriter: what HdrHistogram's
// HistogramLogProcessor and every HdrHistogram library read.
//
// Values are the corrected latencies in microseconds. The interval lines are untagged, because
// HistogramLogProcessor reads only untagged lines unless told a tag; a comment line before each
// run's intervals says which run they are and where its window started.
//
// The library's interval line writes a histogram's start and end stamps, unconverted, into the
// two columns that its own reader and Java's read as the start in seconds and the interval's
// length in seconds. So each histogram's "start" is set to its offset in whole seconds from the
// log's start, and its "end" to the interval's length, 1. Whole seconds because the stamps are
// integers: the log's start time is the first window's start truncated to the second (the
// writer's StartTime line has no finer resolution either), a run's first interval is placed at
// its window's start rounded to the nearest second, never before the previous run's last
// interval has ended, and a comment line gives the exact start. The last interval of a window
// that is not a whole number of seconds covers only the fraction left but is logged 1 s long.
// The writer's base-time line is spelled "Basetime", which no reader matches; readers then take
// the base time to be the StartTime, which is what the small relative stamps mean anyway.
// Interval_Max is the interval's maximum scaled by the writer's fixed ratio of 10^6, which for
// microsecond values is seconds.
func writeHlog(w io.Writer, results []*loadgen.Result) error {
	first := time.Now()
	for _, r := range results {
		if !r.WindowStart.IsZero() {
			first = r.WindowStart
			break
		}
	}
	start := first.Truncate(time.Second)
	lw := hdrhistogram.NewHistogramLogWriter(w)
	header := []func() error{
		lw.OutputLogFormatVersion,
		func() error { return lw.OutputComment("[Logged with echobench -hlog]") },
		func() error {
			return lw.OutputComment("[Values are coordinated-omission-corrected latencies in microseconds; Interval_Max is in seconds]")
		},
		func() error { return lw.OutputStartTime(start.UnixMilli()) },
		func() error { return lw.OutputBaseTime(start.UnixMilli()) },
		lw.OutputLegend,
	}
	for _, write := range header {
		if err := write(); err != nil {
			return fmt.Errorf("-hlog: write header: %w", err)
		}
	}
	next := int64(0) // the earliest offset the next run's first interval may have
	for i, r := range results {
		if len(r.PerSecond) == 0 {
			if err := lw.OutputComment(fmt.Sprintf("[run %d of %d: no measured window]", i+1, len(results))); err != nil {
				return fmt.Errorf("-hlog: write: %w", err)
			}
			continue
		}
		offset := max(int64(math.Round(r.WindowStart.Sub(start).Seconds())), next)
		comment := fmt.Sprintf("[run %d of %d: window starts %s, %.3f s after StartTime; intervals %d..%d s]",
			i+1, len(results), r.WindowStart.UTC().Format(time.RFC3339Nano), r.WindowStart.Sub(start).Seconds(),
			offset, offset+int64(len(r.PerSecond)))
		if err := lw.OutputComment(comment); err != nil {
			return fmt.Errorf("-hlog: write: %w", err)
		}
		for j, s := range r.PerSecond {
			h := s.Latency
			if h == nil {
				h = loadgen.NewHistogram() // an engine without per-second histograms: an empty interval
			}
			// The stamps are only metadata of the histogram, which nothing else reads.
			h.SetStartTimeMs(offset + int64(j))
			h.SetEndTimeMs(1)
			if err := lw.OutputIntervalHistogram(h); err != nil {
				return fmt.Errorf("-hlog: write run %d second %d: %w", i+1, j+1, err)
			}
		}
		next = offset + int64(len(r.PerSecond))
	}
	return nil
}
