/* epoll_echo: a minimal C epoll echo server, echobench's speed reference for models/epoll.
 *
 * One thread, one level-triggered epoll set, non-blocking sockets, one 64 KiB read buffer. A
 * read is echoed at once with send(2); only what the kernel does not take is copied into the
 * connection's outbound buffer, bounded by OUTBOUND_LIMIT, and EPOLLOUT is armed only while that
 * buffer holds something. It does what models/epoll does with one loop, in the fewest lines C
 * allows, so the two can be compared call for call: if the Go model is much slower than this,
 * the cost is Go's or the model's, not the kernel's.
 *
 *	gcc -O2 -Wall -o bin/epoll_echo bench/reference/epoll_echo.c
 *	bin/epoll_echo [-p PORT]    # first stdout line: 127.0.0.1:PORT; SIGTERM stops it
 *
 * Like cmd/echoserver, SIGUSR1 prints "stats {json}" and SIGTERM or SIGINT prints a final one,
 * so the load generator's byte counts can be checked against the server's own. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
	READ_BUFFER = 64 << 10,    /* what one read may take: the largest loopback segment, as in models/epoll */
	OUTBOUND_LIMIT = 4 << 20,  /* bytes held for a client that does not read: server.DefaultOutboundLimit */
	MAX_EVENTS = 256,          /* ready fds per epoll_wait; the rest stay ready (level-triggered) */
	ACCEPT_BATCH = 32,         /* accepts per listener report, so a connect storm cannot starve reads */
	MAX_FDS = 1 << 20,         /* bound of the per-fd table when RLIMIT_NOFILE is larger */
};

struct conn {
	int open, eof;             /* eof: the client half-closed; close once outbound is sent */
	unsigned events;           /* interest registered with epoll now */
	char *out;                 /* outbound: out[off, off+len) waits for the socket, cap <= OUTBOUND_LIMIT */
	size_t off, len, cap;
};

static struct conn *conns;     /* indexed by fd, sized by RLIMIT_NOFILE */
static int epfd, spare_fd, max_fds;
static unsigned long long accepted, rejected, active, bytes_in, bytes_out;
static char rbuf[READ_BUFFER];

static void die(const char *what) { perror(what); exit(1); }

static void print_stats(void)
{
	printf("stats {\"accepted\":%llu,\"rejected\":%llu,\"active\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}\n",
	       accepted, rejected, active, bytes_in, bytes_out);
	fflush(stdout);
}

static void close_conn(int fd)
{
	free(conns[fd].out);
	memset(&conns[fd], 0, sizeof conns[fd]);
	close(fd); /* also removes fd from the epoll set: no one else holds it */
	active--;
}

/* rearm keeps the registered interest in line with the state: read while there is room under the
 * bound and the client has not half-closed; wait for writability only while outbound holds data,
 * since a level-triggered writable socket would otherwise be reported on every wait. */
static void rearm(int fd)
{
	struct conn *c = &conns[fd];
	unsigned want = (!c->eof && c->len < OUTBOUND_LIMIT ? EPOLLIN : 0) | (c->len ? EPOLLOUT : 0);
	if (want == c->events)
		return;
	struct epoll_event ev = {.events = want, .data.fd = fd};
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		die("epoll_ctl mod");
	c->events = want;
}

/* queue copies what the kernel did not take behind what is already waiting. */
static void queue(struct conn *c, const char *p, size_t n)
{
	if (c->off + c->len + n > c->cap) {
		memmove(c->out, c->out + c->off, c->len); /* no-op when out is NULL: len is 0 */
		c->off = 0;
		if (c->len + n > c->cap) {
			size_t cap = c->cap ? c->cap : READ_BUFFER;
			while (cap < c->len + n)
				cap *= 2;
			if (!(c->out = realloc(c->out, cap)))
				die("realloc outbound");
			c->cap = cap;
		}
	}
	memcpy(c->out + c->off + c->len, p, n);
	c->len += n;
}

/* flush sends what outbound holds; it returns 0 when the connection was closed. */
static int flush(int fd)
{
	struct conn *c = &conns[fd];
	while (c->len > 0) {
		/* MSG_NOSIGNAL: a client that went away is an EPIPE here, not a SIGPIPE that kills us. */
		ssize_t w = send(fd, c->out + c->off, c->len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue; /* a signal arrived before anything was sent: try again */
		if (w < 0 && errno == EAGAIN)
			break;    /* the socket is full; EPOLLOUT stays armed */
		if (w < 0) {
			close_conn(fd); /* ECONNRESET, EPIPE: the client is gone */
			return 0;
		}
		c->off += w, c->len -= w, bytes_out += w;
	}
	if (c->len == 0) {
		c->off = 0;
		if (c->eof) {
			close_conn(fd); /* half-closed and everything echoed: done */
			return 0;
		}
	}
	return 1;
}

/* on_readable reads once (level-triggered: more waiting is reported again on the next wait) and
 * echoes straight from the read buffer when nothing is queued ahead of it. */
static int on_readable(int fd)
{
	struct conn *c = &conns[fd];
	size_t room = OUTBOUND_LIMIT - c->len;
	ssize_t r = read(fd, rbuf, room < READ_BUFFER ? room : READ_BUFFER);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return 1; /* interrupted, or a stale report for a reused fd: the next wait tells again */
	if (r < 0) {
		close_conn(fd);
		return 0;
	}
	if (r == 0) {
		c->eof = 1; /* SHUT_WR from the client: send what is left, then close */
		return flush(fd);
	}
	bytes_in += r;
	if (c->len > 0) {
		queue(c, rbuf, r); /* older bytes wait ahead of these: keep the order */
		return 1;
	}
	ssize_t w;
	do
		w = send(fd, rbuf, r, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN) {
		close_conn(fd);
		return 0;
	}
	if (w < 0)
		w = 0;
	bytes_out += w;
	if (w < r)
		queue(c, rbuf + w, r - w);
	return 1;
}

static void on_acceptable(int lfd)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue; /* interrupted, or the client reset while it waited: take the next */
		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			/* The listener stays readable while the backlog is not empty, so level-triggered
			 * epoll would spin on this error. Free the spare fd, take the connection, close it. */
			close(spare_fd);
			if ((fd = accept(lfd, NULL, NULL)) >= 0)
				close(fd), rejected++;
			spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			return;
		}
		if (fd < 0)
			return; /* EAGAIN: the backlog is empty; anything else: try on the next report */
		if (fd >= max_fds) {
			close(fd), rejected++; /* only when RLIMIT_NOFILE exceeds MAX_FDS */
			continue;
		}
		int one = 1; /* the echo is sent as soon as it is read; Nagle would hold it back */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd), rejected++;
			continue;
		}
		conns[fd] = (struct conn){.open = 1, .events = EPOLLIN};
		accepted++, active++;
	}
}

int main(int argc, char **argv)
{
	int port = 0, opt;
	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p') {
			fprintf(stderr, "usage: %s [-p PORT]\n", argv[0]);
			return 2;
		}
		port = atoi(optarg);
	}
	/* Go raises the soft fd limit to the hard one at start; do the same, so both hold as many. */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur > MAX_FDS)
		rl.rlim_cur = MAX_FDS; /* an "unlimited" limit must not size the table; fds beyond are refused */
	max_fds = (int)rl.rlim_cur;
	if (!(conns = calloc(max_fds, sizeof *conns)))
		die("calloc conns");
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* Signals arrive as reads on a signalfd in the epoll set: no handler, no race with epoll_wait. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM), sigaddset(&sigs, SIGINT), sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only, by design */
	socklen_t salen = sizeof sa;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind 127.0.0.1");
	if (listen(lfd, 65535) < 0 || getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0)
		die("listen");
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || sfd < 0)
		die("epoll_create1/signalfd");
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	printf("127.0.0.1:%d\n", ntohs(sa.sin_port));
	fflush(stdout);

	struct epoll_event evs[MAX_EVENTS];
	for (;;) {
		int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue; /* a stop signal (SIGSTOP/SIGCONT) interrupted the wait: wait again */
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			unsigned e = evs[i].events;
			if (fd == sfd) {
				struct signalfd_siginfo si;
				if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo == SIGUSR1) {
					print_stats();
					continue;
				}
				goto stop;
			}
			if (fd == lfd) {
				on_acceptable(lfd);
				continue;
			}
			if (!conns[fd].open)
				continue; /* closed earlier in this batch */
			/* EPOLLERR and EPOLLHUP come whatever the interest; the send or read they wake
			 * returns the error or EOF, which closes the connection. Flush first: it makes room. */
			if (conns[fd].len > 0 && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && !flush(fd))
				continue;
			if ((conns[fd].events & EPOLLIN) && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !on_readable(fd))
				continue;
			rearm(fd);
		}
	}
stop:
	for (int fd = 0; fd < max_fds; fd++)
		if (conns[fd].open)
			close_conn(fd);
	close(lfd), close(sfd), close(epfd), close(spare_fd);
	free(conns);
	print_stats();
	return 0;
}
