package affinity

import (
	"os/exec"
	"slices"
	"testing"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"0", []int{0}},
		{"1,3", []int{1, 3}},
		{"0-3", []int{0, 1, 2, 3}},
		{"4,0-1,1", []int{0, 1, 4}},
	} {
		got, err := ParseList(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseList(Format(got)); !slices.Equal(back, got) {
			t.Errorf("Format(%v) = %q does not parse back", got, Format(got))
		}
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "0,,1", "5000"} {
		if got, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) = %v, want an error", bad, got)
		}
	}
	if got := Format([]int{0, 1, 2, 5, 7, 8}); got != "0-2,5,7-8" {
		t.Errorf("Format = %q", got)
	}
}

func TestPinProcess(t *testing.T) {
	online, err := Online()
	if err != nil {
		t.Fatal(err)
	}
	target := online[len(online)-1:]
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	n, err := PinProcess(cmd.Process.Pid, target)
	if err != nil || n < 1 {
		t.Fatalf("PinProcess = %d, %v", n, err)
	}
	on, total, err := Check(cmd.Process.Pid, target)
	if err != nil || on != total || total < 1 {
		t.Fatalf("Check = %d of %d, %v; want every thread on CPUs %v", on, total, err, target)
	}
}
