package cmdline

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	newSet := func() *flag.FlagSet {
		fs := flag.NewFlagSet("tool", flag.ContinueOnError)
		fs.Int("c", 1, "connections")
		return fs
	}
	for _, args := range [][]string{{"-nope"}, {"-c", "many"}} {
		var stderr bytes.Buffer
		if err := Parse(newSet(), args, &stderr, nil); err == nil {
			t.Errorf("%q: no error", args)
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "tool: ") || !strings.Contains(msg, "run tool -h") {
			t.Errorf("%q: message %q, want one line naming the tool and -h", args, msg)
		}
	}
	var stderr bytes.Buffer
	if err := Parse(newSet(), []string{"-h"}, &stderr, nil); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "connections") {
		t.Errorf("-h: %v, %q: want ErrHelp and the flags listed", err, stderr.String())
	}
	fs := newSet()
	if err := Parse(fs, []string{"-c", "3"}, &stderr, nil); err != nil || fs.Lookup("c").Value.String() != "3" {
		t.Errorf("-c 3: %v", err)
	}
}
