// Package all registers every echobench model. Import it for its side effect.
package all

import (
	_ "echobench/models/stdnet"
)
