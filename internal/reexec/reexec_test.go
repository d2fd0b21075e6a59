package reexec

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

const testRole = "reexec-test"

func init() {
	Register(testRole, func(args []string) int {
		// The role's own children must not inherit the role.
		_, inherited := os.LookupEnv(Env)
		fmt.Printf("args=%s inherited=%v\n", strings.Join(args, ","), inherited)
		return 3
	})
}

func TestMain(m *testing.M) {
	Run()
	os.Exit(m.Run())
}

func TestCommandRunsTheRole(t *testing.T) {
	cmd, err := Command(testRole, "-a", "b c")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("exit %d (%v), want the role's 3; output %q", code, err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "args=-a,b c inherited=false"; got != want {
		t.Errorf("the role printed %q, want %q", got, want)
	}
}

func TestUnknownRoleExits2(t *testing.T) {
	cmd, err := Command("no-such-role")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), testRole) {
		t.Errorf("exit %d, output %q: want 2 and a list of the roles there are", code, out)
	}
}

func TestEnvironReplaces(t *testing.T) {
	t.Setenv(Env, "stale")
	t.Setenv("GOMAXPROCS", "8")
	env := Environ("r", "GOMAXPROCS=1")
	for _, kv := range []string{Env + "=stale", "GOMAXPROCS=8"} {
		if slices.Contains(env, kv) {
			t.Errorf("environment keeps %s", kv)
		}
	}
	for _, kv := range []string{Env + "=r", "GOMAXPROCS=1"} {
		if !slices.Contains(env, kv) {
			t.Errorf("environment lacks %s", kv)
		}
	}
}
