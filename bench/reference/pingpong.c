/* pingpong: a minimal C ping-pong client, the yardstick that ties sockperf's figures to echobench's.
 *
 * Neither of the other two clients can load the other's server. sockperf's server clears a
 * "client" bit in each message's 14-byte header before it echoes, and sockperf's client drops
 * every reply that still has the bit set (it takes them for its own multicast looped back), so
 * against a verbatim echo server it sends one message and waits for ever. echobench's bytes are
 * not valid sockperf headers, so sockperf's server closes echobench's connection. This client
 * sends sockperf's header (sequence number, client and pong-request flags, length) and accepts
 * the echo with or without the client bit, so it runs against both: pingpong vs sockperf on
 * sockperf's server shows that it measures what sockperf measures; pingpong vs echobench on our
 * servers shows what echobench's own overhead adds to a round trip.
 *
 *	gcc -O2 -Wall -o bin/pingpong bench/reference/pingpong.c
 *	pingpong -a 127.0.0.1:PORT [-m 64] [-t SECONDS] [-w WARMUP_SECONDS]
 *
 * One connection, blocking send(2) and recv(2), TCP_NODELAY (as sockperf's ping-pong), one
 * message in flight. Each round trip is timed with CLOCK_MONOTONIC from before send to the last
 * byte of the echo, every echoed byte is checked, and one line is printed:
 *	pingpong msgs=N rtt_us p50=.. p90=.. p99=.. mean=.. min=.. max=.. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	HEADER = 14,              /* sockperf's MsgHeader: u64 sequence, u16 flags, u32 length, big-endian */
	FLAG_CLIENT = 1,          /* sockperf's MASK_CLIENT: its server clears it in the reply */
	FLAG_PONG = 2,            /* sockperf's MASK_PONG: ask its server to reply */
	MAX_MSG = 64 << 10,       /* largest message; sockperf's own limit is the same order */
	MAX_SECONDS = 600,        /* a run is bounded; this is a yardstick, not a soak test */
	MAX_SAMPLES = 1 << 24,    /* 128 MiB of samples at most; a run that would need more stops early */
	REPLY_TIMEOUT_S = 5,      /* a server that stops answering ends the run instead of hanging it */
};

static void die(const char *what) { perror(what); exit(1); }

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* exchange sends one message and reads its echo whole; partial sends and reads are the norm the
 * kernel allows, so both loop. It exits on any error: a broken yardstick must not print a figure. */
static void exchange(int fd, const unsigned char *msg, unsigned char *reply, size_t m)
{
	for (size_t sent = 0; sent < m;) {
		ssize_t w = send(fd, msg + sent, m - sent, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("send");
		sent += w;
	}
	for (size_t got = 0; got < m;) {
		ssize_t r = recv(fd, reply + got, m - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			fprintf(stderr, "pingpong: no echo within %d s\n", REPLY_TIMEOUT_S);
			exit(1);
		}
		if (r < 0)
			die("recv");
		if (r == 0) {
			fprintf(stderr, "pingpong: the server closed the connection (not an echo server?)\n");
			exit(1);
		}
		got += r;
	}
	/* The echo must be the message, except that sockperf's server clears the client flag. */
	if (memcmp(msg, reply, 9) != 0 || (reply[9] | FLAG_CLIENT) != msg[9] || memcmp(msg + 10, reply + 10, m - 10) != 0) {
		fprintf(stderr, "pingpong: the echo differs from the message sent\n");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *addr = NULL;
	int m = 64, opt;
	double seconds = 5, warmup = 1;
	while ((opt = getopt(argc, argv, "a:m:t:w:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'm': m = atoi(optarg); break;
		case 't': seconds = atof(optarg); break;
		case 'w': warmup = atof(optarg); break;
		default: addr = NULL, m = 0; break;
		}
	}
	if (!addr || m < HEADER || m > MAX_MSG || seconds <= 0 || seconds > MAX_SECONDS || warmup < 0) {
		fprintf(stderr, "usage: pingpong -a 127.0.0.1:PORT [-m %d..%d] [-t 0<SECONDS<=%d] [-w WARMUP_SECONDS]\n",
			HEADER, MAX_MSG, MAX_SECONDS);
		return 2;
	}
	char host[64];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (!colon || colon - addr >= (long)sizeof host) {
		fprintf(stderr, "pingpong: -a %s: want 127.0.0.1:PORT\n", addr);
		return 2;
	}
	memcpy(host, addr, colon - addr);
	host[colon - addr] = 0;
	sa.sin_port = htons(atoi(colon + 1));
	/* This client only ever measures loopback: it refuses to aim at another host. */
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "pingpong: -a %s: only a 127.0.0.0/8 IPv4 address is allowed\n", addr);
		return 2;
	}

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

	unsigned char msg[MAX_MSG], reply[MAX_MSG];
	memset(msg, 'x', m);
	msg[8] = 0, msg[9] = FLAG_CLIENT | FLAG_PONG;
	uint32_t len = htonl(m);
	memcpy(msg + 10, &len, 4);

	size_t cap = 1 << 16, n = 0;
	uint64_t *rtt = malloc(cap * sizeof *rtt), seq = 0;
	if (!rtt)
		die("malloc");
	uint64_t start = now_ns(), measure_from = start + (uint64_t)(warmup * 1e9);
	uint64_t end = measure_from + (uint64_t)(seconds * 1e9), t = start;
	while (t < end) {
		seq++;
		for (int i = 0; i < 8; i++)
			msg[i] = seq >> (56 - 8 * i);
		uint64_t sent_at = now_ns();
		exchange(fd, msg, reply, m);
		t = now_ns();
		if (sent_at < measure_from)
			continue; /* warmup: connection, caches and CPU frequency settle */
		if (n == cap) {
			if (cap == MAX_SAMPLES) {
				fprintf(stderr, "pingpong: %d samples taken; stopping early\n", MAX_SAMPLES);
				break;
			}
			cap *= 2;
			if (!(rtt = realloc(rtt, cap * sizeof *rtt)))
				die("realloc");
		}
		rtt[n++] = t - sent_at;
	}
	close(fd);
	if (n == 0) {
		fprintf(stderr, "pingpong: no round trip in the measured window\n");
		return 1;
	}
	qsort(rtt, n, sizeof *rtt, cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += rtt[i];
#define PCT(p) (rtt[(size_t)((p) * (n - 1) + 0.5)] / 1e3)
	printf("pingpong msgs=%zu rtt_us p50=%.3f p90=%.3f p99=%.3f mean=%.3f min=%.3f max=%.3f\n",
	       n, PCT(0.50), PCT(0.90), PCT(0.99), sum / n / 1e3, rtt[0] / 1e3, rtt[n - 1] / 1e3);
	free(rtt);
	return 0;
}
