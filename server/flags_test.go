package server

import (
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

// everyField returns a Config with every field that is a flag set to a value other than its
// zero value. It fails the test on a field of a kind it does not know, so that a new field is
// not silently left out of the flags.
func everyField(t *testing.T) Config {
	t.Helper()
	var c Config
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch f := v.Field(i); {
		case name == "Addr" || name == "Logf":
			// Not flags: see Config.Addr and RegisterFlags.
		case f.Type() == reflect.TypeOf(time.Duration(0)):
			f.SetInt(int64(7 * time.Millisecond))
		case f.Kind() == reflect.Int:
			f.SetInt(7)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("Config.%s is a %s; teach this test (and RegisterFlags) to carry it", name, f.Kind())
		}
	}
	return c
}

// TestArgsRoundTrip checks that every field reaches a flag and comes back: Args of a Config
// parsed by RegisterFlags yields the same Config, and a zero Config has no Args.
func TestArgsRoundTrip(t *testing.T) {
	if args := (Config{}).Args(); len(args) != 0 {
		t.Errorf("zero Config has Args %q, want none", args)
	}
	want := everyField(t)
	var got Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	got.RegisterFlags(fs)
	if err := fs.Parse(want.Args()); err != nil {
		t.Fatalf("parse %q: %v", want.Args(), err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config through Args and RegisterFlags = %+v, want %+v", got, want)
	}
	if n := reflect.TypeOf(Config{}).NumField() - 2; len(want.Args()) != n {
		t.Errorf("Args = %q: want one flag for each of the %d fields but Addr and Logf", want.Args(), n)
	}
}

// TestValidate checks that every field RegisterFlags binds is either accepted at its zero and
// test values or refused when negative, naming its flag.
func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	if err := everyField(t).Validate(); err != nil {
		t.Errorf("Config with every field set: %v", err)
	}
	for flagName, c := range map[string]Config{
		"loops": {Loops: -1}, "pool": {Pool: -1}, "outbound": {OutboundLimit: -1},
		"work": {Work: -1}, "block": {Block: -1}, "poll-sleep": {PollSleep: -1},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-"+flagName+" ") {
			t.Errorf("%+v: Validate = %v, want an error naming -%s", c, err, flagName)
		}
	}
}
