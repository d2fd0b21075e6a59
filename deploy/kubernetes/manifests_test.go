// Package kubernetes holds the manifests of deploy/kubernetes and the test that checks them.
package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docs parses every YAML document of a manifest file, with ${START_AT} filled in as envsubst
// would.
func docs(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("${START_AT}"), []byte("2026-12-02T10:00:00Z"))
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, d)
	}
}

// at walks a parsed document by keys and list indices.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func TestManifests(t *testing.T) {
	server := docs(t, "server.yaml")
	if len(server) != 2 || server[0]["kind"] != "Pod" || server[1]["kind"] != "Service" {
		t.Fatalf("server.yaml: want a Pod and a Service, got %v", server)
	}
	cmd := at(t, server[0], "spec", "containers", 0, "command").([]any)
	joined := strings.Join(toStrings(cmd), " ")
	if !strings.Contains(joined, "-addr 0.0.0.0:7000") || !strings.Contains(joined, "-allow-remote") {
		t.Errorf("server command %q: want -addr 0.0.0.0:7000 and -allow-remote (echoserver refuses a non-loopback address without it)", joined)
	}
	// The README reads the stats through kubectl port-forward to the pod's loopback; nothing may
	// publish that port.
	if !strings.Contains(joined, "-stats-addr 127.0.0.1:9101") {
		t.Errorf("server command %q: want -stats-addr 127.0.0.1:9101, which README.md port-forwards to", joined)
	}
	for _, p := range at(t, server[0], "spec", "containers", 0, "ports").([]any) {
		if p.(map[string]any)["containerPort"] == 9101 {
			t.Error("the pod publishes the stats port; it is for the pod's loopback alone")
		}
	}
	for _, p := range at(t, server[1], "spec", "ports").([]any) {
		if p := p.(map[string]any); p["port"] == 9101 || p["targetPort"] == 9101 {
			t.Error("the Service exposes the stats port; it is for the pod's loopback alone")
		}
	}
	if at(t, server[1], "spec", "type") != "ClusterIP" {
		t.Error("the Service must stay inside the cluster (ClusterIP)")
	}
	if at(t, server[1], "spec", "ports", 0, "targetPort") != 7000 || at(t, server[0], "spec", "containers", 0, "ports", 0, "containerPort") != 7000 {
		t.Error("the Service's target port is not the port the server listens on")
	}
	if at(t, server[1], "spec", "selector", "app") != at(t, server[0], "metadata", "labels", "app") {
		t.Error("the Service does not select the server pod")
	}

	agents := docs(t, "agents.yaml")
	if len(agents) != 1 || agents[0]["kind"] != "Job" {
		t.Fatalf("agents.yaml: want one Job, got %v", agents)
	}
	job := agents[0]
	if at(t, job, "spec", "completionMode") != "Indexed" {
		t.Error("the agents' Job must be Indexed, so each agent writes its own report")
	}
	if c, p := at(t, job, "spec", "completions"), at(t, job, "spec", "parallelism"); c != p {
		t.Errorf("completions %v and parallelism %v differ: the agents would not all run at once", c, p)
	}
	script := strings.Join(toStrings(at(t, job, "spec", "template", "spec", "containers", 0, "command").([]any)), " ")
	for _, want := range []string{"-addr echo-server:7000", "-start-at \"$START_AT\"", "-o /tmp/agent-$JOB_COMPLETION_INDEX.json", "cat /tmp/agent-$JOB_COMPLETION_INDEX.json", "-allow-remote"} {
		if !strings.Contains(script, want) {
			t.Errorf("agent command %q lacks %q", script, want)
		}
	}
	if at(t, job, "spec", "template", "spec", "containers", 0, "env", 0, "value") != "2026-12-02T10:00:00Z" {
		t.Error("START_AT is not filled from ${START_AT}")
	}
}

func toStrings(l []any) []string {
	out := make([]string, len(l))
	for i, v := range l {
		s, _ := v.(string)
		out[i] = s
	}
	return out
}
