package syscount

import (
	"context"
	"strings"
	"testing"
)

// TestMeasureUnknownModel: a row that cannot be measured says why, and nothing is started.
func TestMeasureUnknownModel(t *testing.T) {
	row := Measure(context.Background(), Config{EchoServer: "/nonexistent", EchoBench: "/nonexistent"}, Target{Name: "nosuch/1", Model: "nosuch"})
	if row.Name != "nosuch/1" || !strings.Contains(row.Skipped, "nosuch") || row.measured() {
		t.Errorf("row %+v, want it skipped with the model's name in the reason", row)
	}
}

func TestConfigArgs(t *testing.T) {
	c := Config{Conns: 100, Size: 64, Messages: 200000, Warmup: 1e9, Limit: 120e9, ServerCPUs: "0", ClientCPUs: "1"}
	want := "-c 100 -size 64 -pipeline 1 -messages 200000 -d 2m0s -warmup 1s -server-cpus 0 -client-cpus 1"
	if got := strings.Join(c.Args(), " "); got != want {
		t.Errorf("args %q, want %q", got, want)
	}
}

// TestConfigValidate: the workloads no run could carry out are refused, naming the flag; the
// default one passes.
func TestConfigValidate(t *testing.T) {
	good := Config{Conns: 100, Size: 64, Messages: 200000, Warmup: 1e9, Limit: 120e9}
	if err := good.Validate(); err != nil {
		t.Fatalf("the default workload: %v", err)
	}
	for flag, bad := range map[string]func(*Config){
		"-c":        func(c *Config) { c.Conns = 0 },
		"-size":     func(c *Config) { c.Size = -1 },
		"-messages": func(c *Config) { c.Messages = -1 },
		"-warmup":   func(c *Config) { c.Warmup = -1 },
		"-limit":    func(c *Config) { c.Limit = 0 },
	} {
		c := good
		bad(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), flag+" ") {
			t.Errorf("%s: err %v, want one naming %s", flag, err, flag)
		}
	}
}
