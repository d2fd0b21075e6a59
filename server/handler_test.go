package server

import (
	"bytes"
	"testing"
	"time"
)

// TestHandlerIdle checks that a zero Config's handler is idle and that either cost makes it not.
func TestHandlerIdle(t *testing.T) {
	if !(Config{}).Handler().Idle() {
		t.Error("zero Config: Handler not idle")
	}
	for _, c := range []Config{{Work: time.Microsecond}, {Block: time.Microsecond}} {
		if c.Handler().Idle() {
			t.Errorf("%+v: Handler idle", c)
		}
	}
}

// TestHandlerTakesItsTime checks that Handle lasts at least Work plus Block (a lower bound only:
// how much longer it takes on a loaded machine is not a property of the code) and leaves the
// message as it was.
func TestHandlerTakesItsTime(t *testing.T) {
	for _, c := range []Config{{Work: 3 * time.Millisecond}, {Block: 3 * time.Millisecond}, {Work: 2 * time.Millisecond, Block: 2 * time.Millisecond}} {
		msg := []byte("a message shorter than one block")
		want := bytes.Clone(msg)
		start := time.Now()
		c.Handler().Handle(msg)
		if took, min := time.Since(start), c.Work+c.Block; took < min {
			t.Errorf("%+v: Handle took %v, want at least %v", c, took, min)
		}
		if !bytes.Equal(msg, want) {
			t.Errorf("%+v: Handle changed the message to %q", c, msg)
		}
	}
}
