package syscount

import (
	"strings"
	"testing"
)

func TestFindTracerUnknown(t *testing.T) {
	if _, err := FindTracer("ltrace"); err == nil || !strings.Contains(err.Error(), "perf strace") {
		t.Errorf("FindTracer(ltrace): %v, want an error naming the tracers", err)
	}
}
