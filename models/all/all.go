// Package all registers every echobench model. Import it for its side effect.
package all

import (
	_ "echobench/models/async"
	_ "echobench/models/blocking"
	_ "echobench/models/epoll"
	_ "echobench/models/nonblocking"
	_ "echobench/models/process"
	_ "echobench/models/selectmodel"
	_ "echobench/models/stdnet"
	_ "echobench/models/uring"
)
