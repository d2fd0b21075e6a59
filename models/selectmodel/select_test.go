package selectmodel_test

import (
	"testing"

	"echobench/models/modeltest"
	_ "echobench/models/selectmodel"
)

func TestConformance(t *testing.T) {
	modeltest.Run(t, "select", modeltest.Options{})
}
