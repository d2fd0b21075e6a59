#!/usr/bin/env bash
# ab.sh: the before/after comparison of results/2026-12-01-one-wake/README.md. Like section 5 of
# bench/crosscheck.sh (same servers, pinning, flags and per-message arithmetic), but it alternates
# echobench binaries inside each (rate, server) cell, so that before and after meet the same
# machine. Run it under the bench lock, from the repository:
#
#   flock /work/bench.lock bash results/2026-12-01-one-wake/ab.sh OUTDIR "old=/path/echobench new=bin/echobench" "cref epoll"
#
# An engine named NAME+ts runs NAME's binary while a side process holds one UDP socket with
# SO_TIMESTAMPNS: the kernel then stamps every received packet (net_enable_timestamp is global),
# the server's too, which is what harvest mode costs a server apart from its own change of wakes.
set -uo pipefail
OUT=$1 ENGINES=$2 SERVERS=${3:-"cref epoll"}
RATES=${RATES:-"10000 30000 60000"} REPEATS=${REPEATS:-3} DUR=${DUR:-3} WARMUP=${WARMUP:-1}
mkdir -p "$OUT"
TSV=$OUT/ab.tsv
[[ -s $TSV ]] || printf 'engine\tserver\trate\trepeat\tmsgs_per_s\tserver_us_per_msg\tclient_us_per_msg\tclient_user_us_per_msg\tlag_p50_us\tlag_p99_us\tp50_us\tp99_us\tuncorrected_p50_us\n' >"$TSV"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; local kept=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done; PIDS=("${kept[@]}"); }
start_server() { # sets SPID SADDR
	local f=$OUT/server.stdout
	if [[ $1 == cref ]]; then taskset -c 0 bin/epoll_echo >"$f" 2>/dev/null &
	else taskset -c 0 bin/echoserver -model "$1" -quiet >"$f" 2>/dev/null & fi
	SPID=$! SADDR=
	PIDS+=("$SPID")
	for _ in $(seq 100); do SADDR=$(head -1 "$f" 2>/dev/null); [[ $SADDR == 127.0.0.1:* ]] && return 0; sleep 0.1; done
	return 1
}
for rep in $(seq "$REPEATS"); do
	for rate in $RATES; do
		for srv in $SERVERS; do
			order=$ENGINES
			((rep % 2 == 0)) && order=$(echo "$ENGINES" | tr ' ' '\n' | tac | tr '\n' ' ')
			for e in $order; do
				name=${e%%=*} bin=${e#*=} side=
				if [[ $name == *+ts ]]; then
					python3 -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,35,1); time.sleep(120)' &
					side=$!
					PIDS+=("$side")
					sleep 0.3
				fi
				start_server "$srv" || { echo "ab: $srv did not start" >&2; continue; }
				json=$OUT/$name-$srv-$rate-$rep.json
				timeout -k 5 $((DUR + WARMUP + 60)) "$bin" -addr "$SADDR" -server-pid "$SPID" -client-cpus 1 -size 64 \
					-d "${DUR}s" -warmup "${WARMUP}s" -o "$json" -c 1000 -pipeline 1 -rate "$rate" >"${json%.json}.txt" 2>&1
				stop "$SPID"
				[[ -n $side ]] && stop "$side"
				[[ -s $json ]] || continue
				jq -r --arg e "$name" --arg s "$srv" --arg r "$rate" --arg k "$rep" '.runs[0] as $x | ($x.messages) as $m |
					if $m == 0 or $x.server == null then empty else
					[$e, $s, $r, $k, $x.msgs_per_s, ($x.server.window_cpu_s / $m * 1e6), ($x.client.window_cpu_s / $m * 1e6),
					 ($x.client.window_cpu_s / $m * 1e6 * (if $x.client.cpu_s > 0 then $x.client.cpu_user_s / $x.client.cpu_s else 0 end)),
					 $x.schedule_lag.p50_us, $x.schedule_lag.p99_us, $x.latency.p50_us, $x.latency.p99_us, $x.latency_uncorrected.p50_us] | @tsv end' "$json" >>"$TSV"
			done
		done
	done
done
# medians [min-max] per (engine, server, rate) for every column from msgs_per_s on
tail -n +2 "$TSV" | awk -F'\t' '
	{ k = $1 "\t" $2 "\t" $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }; n[k]++; for (c = 5; c <= NF; c++) v[k, c, n[k]] = $c; nf = NF }
	function med(k, c,   i, j, t, a, m) { m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, c, i] + 0
		for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		lo = a[1]; hi = a[m]; return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
	END { print "engine\tserver\trate\tn\tmsgs/s\tserver us/msg\tclient us/msg\tclient user us/msg\tlag p50\tlag p99\tp50\tp99\tuncorr p50"
		for (i = 1; i <= nk; i++) { k = keys[i]; line = k "\t" n[k]
			for (c = 5; c <= nf; c++) { m = med(k, c); line = line sprintf("\t%.2f [%.2f-%.2f]", m, lo, hi) }
			print line } }' | sort -t$'\t' -k2,2 -k3,3n -k1,1 >"$OUT/ab-summary.tsv"
column -t -s$'\t' "$OUT/ab-summary.tsv"
