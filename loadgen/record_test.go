package loadgen

import (
	"reflect"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestSampleRunRecordsEverySample(t *testing.T) {
	// Batching equal samples must leave the histograms exactly as recording each sample alone
	// would: same count and same value at every quantile, across runs, histograms and the
	// nanosecond values that round to one microsecond.
	a, b := NewHistogram(), NewHistogram()
	wantA, wantB := NewHistogram(), NewHistogram()
	var ra, rb sampleRun
	samples := []int64{5000, 5000, 5999, 5000, 7000, 7000, -3, 0, 999, 1000, 1000, 5000, 200e9, 200e9}
	for i, ns := range samples {
		ra.add(a, ns)
		recordMicros(wantA, ns)
		if i%3 == 0 {
			rb.add(b, ns)
			recordMicros(wantB, ns)
		}
		if i == 6 {
			ra.flush() // a flush mid-stream, as at the end of a consume call
		}
	}
	ra.flush()
	rb.flush()
	ra.flush() // flushing twice records nothing more
	for _, pair := range [][2]*hdrhistogram.Histogram{{a, wantA}, {b, wantB}} {
		got, want := pair[0], pair[1]
		if got.TotalCount() != want.TotalCount() {
			t.Fatalf("count %d, want %d", got.TotalCount(), want.TotalCount())
		}
		for _, q := range []float64{0, 10, 25, 50, 75, 90, 99, 100} {
			if g, w := got.ValueAtQuantile(q), want.ValueAtQuantile(q); g != w {
				t.Fatalf("p%v = %d, want %d", q, g, w)
			}
		}
		if !reflect.DeepEqual(got.Export(), want.Export()) {
			t.Fatalf("histograms differ")
		}
	}
}
