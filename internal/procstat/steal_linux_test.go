package procstat

import (
	"testing"
	"time"
)

func TestParseSteal(t *testing.T) {
	b := []byte(`cpu  16305 0 6416 80578 314 0 2405 8575 0 0
cpu0 6010 0 2872 42896 235 0 1103 5141 0 0
cpu2 10295 0 3544 37682 79 0 1302 3434 0 0
intr 123 4 5
ctxt 99
`)
	s, err := parseSteal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Steal{51410 * time.Millisecond, 0, 34340 * time.Millisecond}
	if len(s) != len(want) {
		t.Fatalf("got %d CPUs %v, want %v", len(s), s, want)
	}
	for i := range want {
		if s[i] != want[i] {
			t.Errorf("cpu%d: steal %v, want %v", i, s[i], want[i])
		}
	}
	if got := s.On([]int{0, 2, 7}); got != want[0]+want[2] {
		t.Errorf("On(0,2,7) = %v, want %v (an absent CPU counts 0)", got, want[0]+want[2])
	}
	if got := s.On(nil); got != want[0]+want[2] {
		t.Errorf("On(nil) = %v, want every CPU's sum", got)
	}
}

func TestParseStealOldKernel(t *testing.T) {
	s, err := parseSteal([]byte("cpu 1 2 3 4\ncpu0 1 2 3 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s[0] != 0 {
		t.Errorf("a kernel without a steal field: got %v, want one CPU at 0", s)
	}
	if _, err := parseSteal([]byte("intr 1\n")); err == nil {
		t.Error("no per-CPU lines: want an error")
	}
	if _, err := parseSteal([]byte("cpux 1 2 3 4 5 6 7 8\n")); err == nil {
		t.Error("a bad CPU number: want an error")
	}
}

func TestReadSteal(t *testing.T) {
	s, err := ReadSteal()
	if err != nil {
		t.Fatal(err)
	}
	if len(s) == 0 {
		t.Fatal("no CPUs")
	}
}
