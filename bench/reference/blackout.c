/* blackout: how late this CPU alone makes a send, whatever client issues it.
 *
 * An open-loop client issues each send when it falls due, if it has the CPU then. On a virtual
 * machine the CPU is sometimes not there: the host runs something else, the guest takes an
 * interrupt, a hypervisor exit takes its time. A send that falls due during such a blackout goes
 * out when it ends, however good the client. This program measures those blackouts: it spins on
 * one CPU for -t seconds, reading CLOCK_MONOTONIC back to back, and every gap between two
 * readings is a moment it did not have the CPU. A send due at a random moment during a gap of g is
 * late by the rest of the gap, so the share of sends at least x late is sum(max(0, g - x)) / T,
 * and the x at which that share is 1 % (0.1 %) is the schedule-lag p99 (p99.9) that no client on
 * this CPU can beat, before it pays for its own timer and wake-up. make crosscheck (section 5)
 * runs it on the client's CPU, with nothing else running, before each repeat.
 *
 *	gcc -O2 -Wall -o bin/blackout bench/reference/blackout.c
 *	taskset -c 1 blackout [-t SECONDS]
 *
 * It takes the whole CPU for that long, by design. It prints one line:
 *	blackout window_s=.. gaps_10us=.. lost_10us_pct=.. gaps_50us_per_s=.. max_us=..
 *	  floor_p99_us=.. floor_p99_9_us=..
 * (gaps_10us and lost_10us_pct count the gaps of at least 10 µs and the share of the window they
 * took; gaps_50us_per_s is how often a gap of at least 50 µs came.) */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum {
	MAX_SECONDS = 60,       /* a probe, not a soak */
	MIN_GAP_NS = 1000,      /* shorter gaps are the loop itself; not kept */
	MAX_GAPS = 20000000,    /* 160 MB at most; a window with more stops early and says so */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static int descending(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static uint64_t *gaps;
static long ngaps;
static double window_ns;

/* late_share is the share of a window's moments that are at least x ns from the end of the gap
 * they fall in: the share of sends due at random that a client would issue x or more late. */
static double late_share(uint64_t x)
{
	double sum = 0;
	for (long i = 0; i < ngaps && gaps[i] > x; i++)
		sum += (double)(gaps[i] - x);
	return sum / window_ns;
}

/* floor_at is the smallest x whose late_share is at most q: the lateness quantile 1 - q. */
static double floor_at(double q)
{
	uint64_t lo = 0, hi = ngaps ? gaps[0] : 0;
	while (hi - lo > 100) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (late_share(mid) > q)
			lo = mid;
		else
			hi = mid;
	}
	return hi / 1e3;
}

int main(int argc, char **argv)
{
	long seconds = 5;
	int opt;
	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't') {
			fprintf(stderr, "usage: %s [-t SECONDS]  (spins on the CPU it runs on; pin it with taskset)\n", argv[0]);
			return 2;
		}
		seconds = atol(optarg);
	}
	if (seconds < 1 || seconds > MAX_SECONDS) {
		fprintf(stderr, "blackout: want -t 1..%d\n", MAX_SECONDS);
		return 2;
	}
	gaps = malloc(sizeof *gaps * MAX_GAPS);
	if (!gaps) {
		perror("malloc");
		return 1;
	}
	uint64_t start = now_ns(), end = start + (uint64_t)seconds * 1000000000u, last = start, now = start;
	while (now < end) {
		now = now_ns();
		if (now - last >= MIN_GAP_NS) {
			if (ngaps == MAX_GAPS) {
				fprintf(stderr, "blackout: more than %d gaps; the window ends early\n", MAX_GAPS);
				break;
			}
			gaps[ngaps++] = now - last;
		}
		last = now;
	}
	window_ns = (double)(now - start);
	qsort(gaps, ngaps, sizeof *gaps, descending);
	long n10 = 0, n50 = 0;
	double lost10 = 0;
	for (long i = 0; i < ngaps; i++) {
		if (gaps[i] >= 10000) {
			n10++;
			lost10 += gaps[i];
		}
		if (gaps[i] >= 50000)
			n50++;
	}
	printf("blackout window_s=%.3f gaps_10us=%ld lost_10us_pct=%.3f gaps_50us_per_s=%.1f max_us=%.1f floor_p99_us=%.1f floor_p99_9_us=%.1f\n",
	       window_ns / 1e9, n10, 100 * lost10 / window_ns, n50 / (window_ns / 1e9), ngaps ? gaps[0] / 1e3 : 0,
	       floor_at(0.01), floor_at(0.001));
	return 0;
}
