/* openloop: a minimal C open-loop client, the floor that echobench's own cost is held against.
 *
 * echobench at a fixed rate pays, per message, its own wake for the send that falls due, the send
 * itself (which on loopback runs the server's receive path and wakes the server) and the read of
 * the echo. Any open-loop client pays those. This one pays nothing else: no histograms of latency,
 * no byte checks, no per-second series, no Go runtime. Its CPU per echoed message is what the
 * pattern costs on this machine, and echobench's ÷ this one's is echobench's own overhead (make
 * crosscheck, section 5).
 *
 *	gcc -O2 -Wall -o bin/openloop bench/reference/openloop.c
 *	openloop -a 127.0.0.1:PORT -r MSGS_PER_S [-c 1000] [-m 64] [-t SECONDS] [-w WARMUP] [-P SERVER_PID]
 *
 * The engine is echobench's harvest mode in miniature. Each connection sends every c/rate
 * seconds from a phase of its own, set by echobench's rule (loadgen's slotPhase): connection i
 * at i/rate seconds, so that the sends are evenly spaced, 1/rate apart, and the first is the
 * first turn after the last connect. How many sends share a wake depends on how those phases
 * fall, so the yardstick must place them as echobench does: evenly spaced sends need one wake
 * per message on both sides, clumped ones fewer. The loop sleeps on the clock alone
 * (clock_nanosleep, timer slack 1 ns) until the next one is due, sends what fell due, then reads
 * whatever echoes arrived (a zero-timeout epoll_wait, one read per ready connection). A
 * connection whose echo is still out when its next turn comes skips that turn (counted).
 * Loopback only; bounded in time. With -P, the server process's CPU over the same window is read
 * from /proc/PID/stat too (the process alone, not its children: the C reference server has none).
 * It prints one line:
 *	openloop msgs=N window_s=.. cpu_user_s=.. cpu_sys_s=.. us_per_msg=.. user_us_per_msg=..
 *	  lag_p50_us=.. lag_p99_us=.. skipped=.. [server_us_per_msg=..] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	MAX_CONNS = 20000,     /* the fd ceiling of the machines we run on */
	MAX_MSG = 64 << 10,
	MAX_SECONDS = 120,     /* a yardstick run, not a soak */
	LAG_BUCKETS = 100000,  /* schedule lag in 1 µs buckets, up to 100 ms; beyond counts in the last */
	EVENTS = 256,
};

static void die(const char *what) { perror(what); exit(1); }

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static double cpu_s(const struct timeval *tv) { return tv->tv_sec + tv->tv_usec / 1e6; }

/* proc_cpu_s is process pid's user + system CPU so far, from /proc/PID/stat, or -1. */
static double proc_cpu_s(long pid)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char *ok = fgets(line, sizeof line, f);
	fclose(f);
	char *p = ok ? strrchr(line, ')') : NULL; /* the command name may hold spaces */
	unsigned long utime, stime;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / sysconf(_SC_CLK_TCK);
}

struct conn {
	int fd;
	int busy;         /* a message is out and its echo not yet whole */
	size_t received;  /* bytes of the current echo read so far */
};

static uint64_t lag[LAG_BUCKETS];

static unsigned lag_percentile(uint64_t total, double p)
{
	uint64_t want = (uint64_t)(total * p), seen = 0;
	for (unsigned i = 0; i < LAG_BUCKETS; i++) {
		seen += lag[i];
		if (seen > want)
			return i;
	}
	return LAG_BUCKETS - 1;
}

static int dial(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0)
		die("socket");
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

int main(int argc, char **argv)
{
	const char *addr = NULL;
	long rate = 0, conns = 1000, size = 64, seconds = 5, warmup = 1, server_pid = 0;
	int opt;
	while ((opt = getopt(argc, argv, "a:r:c:m:t:w:P:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'r': rate = atol(optarg); break;
		case 'c': conns = atol(optarg); break;
		case 'm': size = atol(optarg); break;
		case 't': seconds = atol(optarg); break;
		case 'w': warmup = atol(optarg); break;
		case 'P': server_pid = atol(optarg); break;
		default:
			fprintf(stderr, "usage: %s -a 127.0.0.1:PORT -r MSGS_PER_S [-c 1000] [-m 64] [-t 5] [-w 1] [-P SERVER_PID]\n", argv[0]);
			return 2;
		}
	}
	char host[64];
	int port;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (!addr || sscanf(addr, "%63[^:]:%d", host, &port) != 2 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "openloop: -a wants an IPv4 loopback host:port\n");
		return 2;
	}
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "openloop: %s is not a loopback address; this yardstick loads loopback only\n", host);
		return 2;
	}
	if (rate < 1 || conns < 1 || conns > MAX_CONNS || size < 1 || size > MAX_MSG || seconds < 1 ||
	    seconds > MAX_SECONDS || warmup < 0 || warmup > MAX_SECONDS) {
		fprintf(stderr, "openloop: want -r >= 1, -c 1..%d, -m 1..%d, -t 1..%d, -w 0..%d\n",
			MAX_CONNS, MAX_MSG, MAX_SECONDS, MAX_SECONDS);
		return 2;
	}
	sa.sin_port = htons(port);
	prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);

	struct conn *cs = calloc(conns, sizeof *cs);
	static unsigned char msg[MAX_MSG], buf[MAX_MSG];
	memset(msg, 'x', size);
	int ep = epoll_create1(0);
	if (!cs || ep < 0)
		die("setup");
	uint64_t start = now_ns();
	for (long i = 0; i < conns; i++) {
		cs[i].fd = dial(&sa);
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
			die("epoll_ctl");
	}

	/* Send k is connection k mod c's, due k/rate seconds after start: connection i's turns fall at
	 * i/rate and every c/rate after, as echobench schedules them. */
#define DUE(k) (start + (uint64_t)((double)(k) * 1e9 / rate))

	uint64_t k = 0;
	for (uint64_t connected = now_ns(); DUE(k) < connected; k++)
		; /* the turns that passed while connecting are not owed */
	struct epoll_event evs[EVENTS];
	uint64_t open_at = start + warmup * 1000000000ull,
		 end = open_at + seconds * 1000000000ull, msgs = 0, lags = 0, skipped = 0;
	struct rusage at_open = {0}, at_end;
	double server_open = -1;
	int open = warmup == 0;
	if (open) {
		getrusage(RUSAGE_SELF, &at_open);
		server_open = server_pid ? proc_cpu_s(server_pid) : -1;
	}
	for (;;) {
		uint64_t now = now_ns();
		if (!open && now >= open_at) {
			getrusage(RUSAGE_SELF, &at_open);
			server_open = server_pid ? proc_cpu_s(server_pid) : -1;
			open = 1;
		}
		if (now >= end)
			break;
		/* send what fell due */
		for (uint64_t due; (due = DUE(k)) <= now; k++) {
			struct conn *c = &cs[k % conns];
			if (c->busy) {
				skipped++;
				continue;
			}
			ssize_t n = send(c->fd, msg, size, MSG_NOSIGNAL);
			if (n != size)
				die("send (a short send of a small message: the server is not reading)");
			c->busy = 1;
			c->received = 0;
			if (due >= open_at) {
				uint64_t late = (now - due) / 1000;
				lag[late < LAG_BUCKETS ? late : LAG_BUCKETS - 1]++;
				lags++;
			}
		}
		/* harvest the echoes that came in meanwhile */
		int n = epoll_wait(ep, evs, EVENTS, 0);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *c = &cs[evs[i].data.u32];
			ssize_t got = recv(c->fd, buf, sizeof buf, 0);
			if (got == 0) {
				fprintf(stderr, "openloop: the server closed a connection\n");
				return 1;
			}
			if (got < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				die("recv");
			}
			c->received += got;
			if (c->received >= (size_t)size && c->busy) {
				c->busy = 0;
				c->received -= size;
				if (now >= open_at)
					msgs++;
			}
		}
		/* wait for the next one */
		uint64_t next = DUE(k), t = now_ns();
		if (next <= t)
			continue;
		struct timespec ts = {.tv_sec = next / 1000000000u, .tv_nsec = next % 1000000000u};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	getrusage(RUSAGE_SELF, &at_end);
	double server_end = server_pid ? proc_cpu_s(server_pid) : -1;
	double user = cpu_s(&at_end.ru_utime) - cpu_s(&at_open.ru_utime);
	double sys = cpu_s(&at_end.ru_stime) - cpu_s(&at_open.ru_stime);
	printf("openloop msgs=%llu window_s=%ld cpu_user_s=%.3f cpu_sys_s=%.3f us_per_msg=%.2f user_us_per_msg=%.2f "
	       "lag_p50_us=%u lag_p99_us=%u skipped=%llu",
	       (unsigned long long)msgs, seconds, user, sys, msgs ? (user + sys) / msgs * 1e6 : 0,
	       msgs ? user / msgs * 1e6 : 0, lag_percentile(lags, 0.5), lag_percentile(lags, 0.99),
	       (unsigned long long)skipped);
	if (server_open >= 0 && server_end >= 0 && msgs)
		printf(" server_us_per_msg=%.2f", (server_end - server_open) / msgs * 1e6);
	printf("\n");
	return 0;
}
