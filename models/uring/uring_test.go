package uring

import (
	"testing"

	"echobench/models/modeltest"
)

// TestConformance runs the shared suite; it skips, with the reason, where io_uring is unavailable.
func TestConformance(t *testing.T) {
	modeltest.Run(t, "uring", modeltest.Options{})
}
