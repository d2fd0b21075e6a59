package blocking

import (
	"os"
	"runtime"
	"testing"
)

// TestMain locks the main goroutine to the main thread, as cmd/echoserver does, so that no
// connection goroutine runs there: the runtime parks the main thread instead of destroying it when
// a locked goroutine exits, and the thread-per-connection tests count destroyed threads.
func TestMain(m *testing.M) {
	runtime.LockOSThread()
	os.Exit(m.Run())
}
