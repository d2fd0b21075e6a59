// Package reexec lets a binary start copies of itself that play another role: an echo server
// started by echobench or a test, a model's helper process, a test's child server.
//
// A role is registered by name, usually from the init function of the package that owns it.
// Every main and every TestMain of a binary that can be re-executed calls Run first thing: when
// the process was started by Command for a role, Run runs that role's main with the command's
// arguments and exits; otherwise it returns at once. The role travels in one environment
// variable, Env; everything the role needs travels as its arguments, so a new parameter needs no
// new variable.
package reexec

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
)

// Env names the environment variable that carries the role. It is removed from the environment
// before the role's main runs, so that whatever the role starts in turn is not mistaken for it.
const Env = "ECHOBENCH_ROLE"

var (
	mu    sync.Mutex
	roles = map[string]func(args []string) int{}
)

// Register makes main the entry point of role. main gets the arguments Command was given and
// returns the process's exit status. Registering a role twice is a programming error and panics.
func Register(role string, main func(args []string) int) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := roles[role]; dup {
		panic("reexec: role registered twice: " + role)
	}
	roles[role] = main
}

// Run runs the role this process was started for, and exits with its status; with no role asked
// for it returns at once.
func Run() {
	role, ok := os.LookupEnv(Env)
	if !ok {
		return
	}
	os.Unsetenv(Env)
	mu.Lock()
	main, known := roles[role]
	mu.Unlock()
	if !known {
		fmt.Fprintf(os.Stderr, "%s=%s: this binary has no such role (it has: %s); does its main or TestMain call reexec.Run, and does it link the package that registers the role?\n",
			Env, role, strings.Join(Roles(), " "))
		os.Exit(2)
	}
	os.Exit(main(os.Args[1:]))
}

// Roles lists the registered roles, sorted.
func Roles() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(roles))
	for r := range roles {
		names = append(names, r)
	}
	sort.Strings(names)
	return names
}

// Command returns a command that runs this executable in role with args. Its environment is this
// process's, with Env set to role; a caller may add to cmd.Env, but should use Environ to replace
// a variable.
func Command(role string, args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable to re-execute as %s: %w", role, err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = Environ(role)
	return cmd, nil
}

// Environ returns this process's environment with Env set to role, plus the extra name=value
// pairs, each replacing any variable of the same name.
func Environ(role string, extra ...string) []string {
	ours := append([]string{Env + "=" + role}, extra...)
	replaced := map[string]bool{}
	for _, kv := range ours {
		name, _, _ := strings.Cut(kv, "=")
		replaced[name] = true
	}
	env := make([]string, 0, len(os.Environ())+len(ours))
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !replaced[name] {
			env = append(env, kv)
		}
	}
	return append(env, ours...)
}
