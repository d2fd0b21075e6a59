//go:build !linux

package process

import (
	"errors"
	"fmt"
	"os"

	"echobench/server"
)

var errLinuxOnly = errors.New("the process model needs Linux (Pdeathsig, accept4); use -model stdnet")

func available() error { return errLinuxOnly }

// Start reports that the model cannot run here.
func Start(server.Config) (server.Server, error) { return nil, errLinuxOnly }

func runChild() int {
	fmt.Fprintln(os.Stderr, errLinuxOnly)
	return 2
}
