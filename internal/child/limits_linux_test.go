package child

import "testing"

func TestFDLimitLeaving(t *testing.T) {
	for _, tc := range []struct {
		name  string
		open  []int
		slots int
		want  uint64
	}{
		{"no holes", []int{0, 1, 2, 3}, 4, 8},
		{"holes fill first", []int{0, 1, 2, 5, 6}, 3, 8},
		{"slots within a hole", []int{0, 1, 2, 5, 6}, 2, 5},
		{"open fds above the limit take no slot", []int{0, 1, 2, 100}, 2, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := map[int]bool{}
			for _, fd := range tc.open {
				open[fd] = true
			}
			if got := fdLimitLeaving(open, tc.slots); got != tc.want {
				t.Errorf("fds %v open, %d slots: limit %d, want %d", tc.open, tc.slots, got, tc.want)
			}
		})
	}
}
