package uring

// The io_uring operations of the UDP variant (udp_linux.go): IORING_OP_RECVMSG and
// IORING_OP_SENDMSG, which carry a datagram's address beside its bytes. Like ring_linux.go this
// file is ABI and knows nothing about echo servers.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes from include/uapi/linux/io_uring.h (Linux 5.3).
const (
	opSendmsg = 9
	opRecvmsg = 10
)

// recvmsgOut is struct io_uring_recvmsg_out: what a multishot recvmsg writes at the start of each
// provided buffer it fills. After it come the sender's address, in as many bytes as the msghdr's
// msg_namelen asked for whatever the address's own length (namelen), then msg_controllen bytes of
// control data, then the payload. payloadlen is the datagram's length even when it did not fit,
// and flags then holds MSG_TRUNC.
type recvmsgOut struct {
	namelen, controllen, payloadlen, flags uint32
}

const recvmsgOutSize = int(unsafe.Sizeof(recvmsgOut{}))

func init() {
	if recvmsgOutSize != 16 {
		panic("uring: io_uring_recvmsg_out layout does not match the kernel's")
	}
}

// recvmsgMultishotSQE is a recvmsg that stays armed (IORING_RECV_MULTISHOT with
// IORING_OP_RECVMSG, Linux 6.0): each datagram that arrives is written, behind a recvmsgOut
// header and its sender's address, into a buffer the kernel takes from group, and posted as a
// completion with IORING_CQE_F_MORE. msg is a template: only its msg_namelen and msg_controllen
// are read, when the SQE is submitted. Kernels before 6.0 refuse it with EINVAL.
func recvmsgMultishotSQE(fd int, msg *unix.Msghdr, group uint16, userData uint64) sqe {
	return sqe{opcode: opRecvmsg, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(msg))), len: 1,
		flags: sqeBufferSelect, bufGroup: group, ioprio: recvMultishot, userData: userData}
}

// recvmsgSQE receives one datagram as recvmsg(2) does: its bytes into msg's iovec, its sender
// into msg_name. msg, its iovec and the memory they point to must stay put and reachable until
// the completion.
func recvmsgSQE(fd int, msg *unix.Msghdr, userData uint64) sqe {
	return sqe{opcode: opRecvmsg, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(msg))), len: 1, userData: userData}
}

// sendmsgSQE sends one datagram as sendmsg(2) does: msg's iovec to the address in msg_name. msg,
// its iovec and the memory they point to must stay put and reachable until the completion.
func sendmsgSQE(fd int, msg *unix.Msghdr, msgFlags uint32, userData uint64) sqe {
	return sqe{opcode: opSendmsg, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(msg))), len: 1,
		opFlags: msgFlags, userData: userData}
}
