package selectmodel_test

import (
	"testing"

	"echobench/models/modeltest"
	_ "echobench/models/select"
)

func TestConformance(t *testing.T) {
	modeltest.Run(t, "select", modeltest.Options{})
}
