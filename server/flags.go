package server

import (
	"flag"
	"fmt"
)

// RegisterFlags binds every Config field but Addr and Logf to a flag of fs, with the field's
// current value as the default. It is the one place a Config field becomes a flag: echoserver,
// echobench (which passes them on to its server child) and the harness's rows all go through it
// and through its inverse, Args.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Loops, "loops", c.Loops, "event loops or threads, for models that have a fixed number (0 = GOMAXPROCS)")
	fs.IntVar(&c.Pool, "pool", c.Pool, "serve at most N connections at once, the rest wait in the backlog (blocking, process; 0 = one thread or process per connection)")
	fs.IntVar(&c.OutboundLimit, "outbound", c.OutboundLimit, fmt.Sprintf("bytes buffered toward one client that does not read (0 = %d)", DefaultOutboundLimit))
	fs.BoolVar(&c.ReusePort, "reuseport", c.ReusePort, "one SO_REUSEPORT listener per loop, for models that support it")
	fs.BoolVar(&c.LockOSThread, "lockthread", c.LockOSThread, "lock each event loop to its own OS thread, for models that support it")
	fs.BoolVar(&c.UDP, "udp", c.UDP, "echo UDP datagrams instead of TCP connections, for models with a UDP variant (-list shows them)")
	fs.DurationVar(&c.Work, "work", c.Work, "CPU-bound work per message before its echo, e.g. 50us (hashing until the thread has used that much CPU; 0 = none)")
	fs.DurationVar(&c.Block, "block", c.Block, "a blocking call per message before its echo, e.g. 1ms (a sleep standing for a database call; 0 = none)")
	fs.DurationVar(&c.PollSleep, "poll-sleep", c.PollSleep, "nonblocking model: sleep this long after a pass over the sockets that found nothing (0 = pure busy polling)")
}

// Args returns the flags that make RegisterFlags set a zero Config to c: one -name=value for
// every field that differs from its zero value, in the flags' sorted order. Addr and Logf are not
// among them.
func (c Config) Args() []string {
	var zero Config
	defaults := flag.NewFlagSet("defaults", flag.ContinueOnError)
	zero.RegisterFlags(defaults)
	set := flag.NewFlagSet("set", flag.ContinueOnError)
	c.RegisterFlags(set) // c is a copy: binding it changes nothing of the caller's
	var args []string
	set.VisitAll(func(f *flag.Flag) {
		if f.DefValue != defaults.Lookup(f.Name).DefValue {
			args = append(args, "-"+f.Name+"="+f.DefValue)
		}
	})
	return args
}

// Validate reports the first field of c that no model can honour, with what to pass instead: a
// negative count, limit or duration. Zero always means the model's default.
func (c Config) Validate() error {
	for _, f := range []struct {
		flag string
		bad  bool
	}{
		{"loops", c.Loops < 0}, {"pool", c.Pool < 0}, {"outbound", c.OutboundLimit < 0},
		{"work", c.Work < 0}, {"block", c.Block < 0}, {"poll-sleep", c.PollSleep < 0},
	} {
		if f.bad {
			return fmt.Errorf("-%s is negative; give 0 for the model's default, or a positive value", f.flag)
		}
	}
	return nil
}
