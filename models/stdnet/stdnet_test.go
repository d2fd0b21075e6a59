package stdnet_test

import (
	"testing"

	"echobench/models/modeltest"
	_ "echobench/models/stdnet"
)

func TestConformance(t *testing.T) {
	modeltest.Run(t, "stdnet", modeltest.Options{})
}
