package stdnet

import "time"

// afterBackoff paces accept retries after a temporary error such as EMFILE: retrying at once
// would spin a core on an error that only goes away when some connection closes.
func afterBackoff() <-chan time.Time { return time.After(50 * time.Millisecond) }
