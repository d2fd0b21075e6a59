package modeltest

import "syscall"

const syscallECONNRESET = syscall.ECONNRESET
