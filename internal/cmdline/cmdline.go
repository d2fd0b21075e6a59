// Package cmdline is how every echobench command parses its flags, so that a mistake costs the
// user one line, not a screen: a bad flag or value prints one line that names it and how to list
// the flags, and only -h prints the full usage.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Parse parses args into fs. With -h it calls usage and returns flag.ErrHelp. On a bad flag it
// writes one line to stderr, "NAME: what is wrong; run NAME -h to list the flags", and returns
// the error. usage may be nil, for fs's default listing.
func Parse(fs *flag.FlagSet, args []string, stderr io.Writer, usage func()) error {
	fs.SetOutput(io.Discard) // flag's own message and usage; the one line below replaces them
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(stderr, "usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v; run %s -h to list the flags\n", fs.Name(), err, fs.Name())
	}
	return err
}

// ParseCommandLine is Parse for a command that declares its flags on flag.CommandLine: it parses
// os.Args and exits 0 after -h, 2 after a bad flag.
func ParseCommandLine() {
	fs := flag.CommandLine
	name := filepath.Base(os.Args[0])
	fs.Init(name, flag.ContinueOnError)
	if err := Parse(fs, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
}
