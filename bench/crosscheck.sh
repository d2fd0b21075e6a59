#!/usr/bin/env bash
# crosscheck.sh: check echobench's figures against tools we did not write, so that every figure
# can survive a skeptic. Loopback only, every step bounded in time, one load at a time, server on
# one CPU and client on another. It kills only the processes it started.
#
#   bash bench/crosscheck.sh            # or: make crosscheck
#   DUR=10 MODELS="epoll" bash bench/crosscheck.sh
#
# What it measures, and the target each figure is held to (our brief's; checked here, in the
# notes, never in unit tests):
#   1. Round trip, 1 connection x 64 B ping-pong, p50. sockperf's client drops a verbatim echo
#      (its server clears a "client" bit in sockperf's header; its client ignores replies that
#      still carry it), and sockperf's server refuses echobench's bytes (not sockperf headers).
#      So the comparison is a chain through bin/pingpong (bench/reference/pingpong.c), a C client
#      that speaks sockperf's header and accepts a verbatim echo:
#        pingpong / sockperf      on sockperf's own server: is the yardstick sound? (about 1.0)
#        echobench / pingpong     on the same server (C reference, each model): echobench's overhead
#        echobench(C reference) / sockperf(sockperf server): the brief's figure, target <= 1.3
#   2. Throughput, CONNS connections x 64 B ping-pong: models/epoll over the C reference server
#      (bench/reference/epoll_echo.c), msgs/s and msgs per server CPU-second. Target >= 0.9.
#   3. Byte counts: echobench's totals against the server's own counters (-model runs), |diff| <= 2%.
#   4. Only if a tcpkali binary is already on PATH (this script never builds or fetches it):
#      tcpkali -m (64 B, streaming) against echobench -pipeline K at the same connection count, each
#      measured from the server's side (its own byte counters and CPU over DUR seconds once the
#      client has ramped up), and the most connections the server held: stock tcpkali 1.2.0 opens
#      more than -c when its workers are saturated (its connect requests wait in a pipe to a busy
#      worker and are not counted), the more so the higher --connect-rate (KALI_CONNECT_RATE).
#   5. Fixed rate, RATE_CONNS connections x 64 B open loop at each of RATES (0 = closed loop, the
#      saturation point): the C reference server against RATE_MODELS, RATE_REPEATS repeats with the
#      server order reversed every other repeat, a fresh server per run. Per run: the server's CPU
#      per echoed message over the measured window, echobench's own (total and user), echobench's
#      schedule lag p99 (how late it issued the sends that fell due) and the corrected p99.
#      Medians with [min-max] and each model's median over the C server's. Targets (issue "At the
#      floor at every load"): epoll <= 1.1x C and <= async at every rate; uring <= epoll;
#      echobench's lag p99 <= 50 us and user CPU <= 1.5 us per message at 30,000/s.
#      At each open-loop rate the row "openloop" is the C server loaded by bin/openloop
#      (bench/reference/openloop.c), a C open-loop client of echobench's harvest design with
#      nothing else in it: its CPU and schedule lag per message are the floor of any open-loop
#      client on this machine, and echobench's over it is echobench's own overhead ("x openloop").
#      The row "blackout" is bin/blackout (bench/reference/blackout.c) on the client's CPU with
#      nothing else running, before each rate of each repeat: the schedule-lag p99 that the CPU's
#      own gaps (host, interrupts) impose on any client, before it pays for its timer or its sends.
#
# Results: results/crosscheck-<UTC time>/ holds every raw output, figures.tsv and summary.txt.
# Absolute figures on a shared machine are noise; the ratios are the result, and only on a quiet one.
set -uo pipefail

DUR=${DUR:-5}                       # seconds each measurement runs
WARMUP=${WARMUP:-1}                 # seconds of load before each echobench/pingpong measurement
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CONNS=${CONNS:-1000}                # connections for the throughput comparison
MODELS=${MODELS:-"epoll async stdnet"}
KALI_CONNS=${KALI_CONNS:-"100 1000"}
KALI_PIPELINES=${KALI_PIPELINES:-"256 1024"}  # echobench allows 1..1024
KALI_CONNECT_RATE=${KALI_CONNECT_RATE:-}  # empty: tcpkali's default, 100/s; faster makes it overshoot -c more
RATES=${RATES:-"10000 30000 60000 0"}   # section 5: open-loop msgs/s; 0 = closed loop
RATE_MODELS=${RATE_MODELS:-"epoll async uring stdnet"}
RATE_REPEATS=${RATE_REPEATS:-5}
RATE_CONNS=${RATE_CONNS:-1000}
STEAL_QUIET=0.1                      # section 5: runs whose client steal is below this % count as quiet: none counted (one 10 ms tick in a 5 s window is 0.2%)
SECTIONS=${SECTIONS:-"1 2 3 4 5"}   # which of the five checks below to run
MAX_DUR=60                          # a cross-check is a short run; long soaks belong elsewhere

die() { echo "crosscheck: $*" >&2; exit 1; }
[[ $DUR =~ ^[0-9]+$ && $DUR -ge 1 && $DUR -le $MAX_DUR ]] || die "DUR=$DUR: want whole seconds, 1..$MAX_DUR (sockperf takes whole seconds)"
[[ $WARMUP =~ ^[0-9]+$ && $WARMUP -le $MAX_DUR ]] || die "WARMUP=$WARMUP: want whole seconds, 0..$MAX_DUR"
[[ $RATE_REPEATS =~ ^[1-9][0-9]?$ ]] || die "RATE_REPEATS=$RATE_REPEATS: want 1..99"
for r in $RATES; do [[ $r =~ ^[0-9]+$ ]] || die "RATES: $r is not a rate in msgs/s (0 = closed loop)"; done
[[ -z $KALI_CONNECT_RATE || $KALI_CONNECT_RATE =~ ^[1-9][0-9]*$ ]] || die "KALI_CONNECT_RATE=$KALI_CONNECT_RATE: want connections per second"
cd "$(dirname "$0")/.." || die "cannot cd to the repository"
for c in "$SERVER_CPU" "$CLIENT_CPU"; do
	taskset -c "$c" true 2>/dev/null || die "CPU $c is not available here; set SERVER_CPU and CLIENT_CPU"
done
[[ $SERVER_CPU != "$CLIENT_CPU" ]] || echo "crosscheck: WARNING: server and client share CPU $SERVER_CPU" >&2

OUT=results/crosscheck-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT" bin || die "cannot create $OUT"
RUN_LIMIT=$((DUR + WARMUP + 60))    # no client runs longer than this, whatever happens

# ---- bookkeeping: only what we started is ever killed ----------------------------------------
STARTED=()
cleanup() {
	local pid
	for pid in "${STARTED[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		fi
	done
}
trap cleanup EXIT
# forget PID: once a child is reaped its pid may be reused by someone else's process, so it must
# leave the list that cleanup kills.
forget() {
	local pid kept=()
	for pid in "${STARTED[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
	STARTED=("${kept[@]}")
}
trap 'exit 130' INT TERM

FIGS=$OUT/figures.tsv
printf 'figure\tvalue\tunit\tnote\n' >"$FIGS"
fig() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$FIGS"; }
log() { echo "crosscheck: $*" >&2; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.3f", a / b }'; }

# ---- tools --------------------------------------------------------------------------------------
install_pkg() { # install_pkg CMD PKG: from Debian, when root and the command is missing
	command -v "$1" >/dev/null && return 0
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing $2 from Debian"
		timeout 300 apt-get install -y -qq "$2" >>"$OUT/apt.log" 2>&1 ||
			{ timeout 300 apt-get update -qq >>"$OUT/apt.log" 2>&1 && timeout 300 apt-get install -y -qq "$2" >>"$OUT/apt.log" 2>&1; }
	fi
	command -v "$1" >/dev/null
}
install_pkg jq jq || die "needs jq (apt-get install jq)"
install_pkg ss iproute2 || die "needs ss (apt-get install iproute2)"
HAVE_SOCKPERF=1
install_pkg sockperf sockperf || { HAVE_SOCKPERF=0; log "sockperf unavailable: its rows are skipped"; }
HAVE_TCPKALI=0
command -v tcpkali >/dev/null && HAVE_TCPKALI=1

log "building into bin/"
${CC:-cc} -O2 -Wall -o bin/epoll_echo bench/reference/epoll_echo.c || die "build epoll_echo"
${CC:-cc} -O2 -Wall -o bin/pingpong bench/reference/pingpong.c || die "build pingpong"
${CC:-cc} -O2 -Wall -o bin/openloop bench/reference/openloop.c || die "build openloop"
${CC:-cc} -O2 -Wall -o bin/blackout bench/reference/blackout.c || die "build blackout"
${GO:-go} build -o bin/echoserver ./cmd/echoserver || die "build echoserver"
${GO:-go} build -o bin/echobench ./cmd/echobench || die "build echobench"

{
	echo "start        $(date -u +%FT%TZ)"
	echo "kernel       $(uname -r)"
	echo "cpus         $(nproc) online; server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU (taskset)"
	echo "loadavg      $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
	echo "commit       $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
	echo "go           $(${GO:-go} version | cut -d' ' -f3-)"
	echo "cc           $(${CC:-cc} --version | head -1)"
	echo "sockperf     $( ((HAVE_SOCKPERF)) && sockperf --version 2>&1 | head -1 || echo absent)"
	echo "tcpkali      $( ((HAVE_TCPKALI)) && tcpkali --version 2>&1 | head -1 || echo 'absent (not on PATH)')"
	echo "settings     DUR=${DUR}s WARMUP=${WARMUP}s CONNS=$CONNS MODELS='$MODELS' RATES='$RATES' RATE_MODELS='$RATE_MODELS' RATE_REPEATS=$RATE_REPEATS RATE_CONNS=$RATE_CONNS KALI_CONNS='$KALI_CONNS' KALI_PIPELINES='$KALI_PIPELINES' KALI_CONNECT_RATE='${KALI_CONNECT_RATE:-tcpkali default}'"
} >"$OUT/conditions.txt"

# ---- servers ------------------------------------------------------------------------------------
SERVER_PID='' SERVER_ADDR='' SERVER_NAME=''
start_server() { # start_server NAME CMD...: pinned; its first stdout line is its address
	SERVER_NAME=$1
	shift
	# Emptied here, not by the redirection below: that runs in the child, which may not have run
	# yet when the loop first reads the file, and the previous server's address is in it.
	: >"$OUT/server-$SERVER_NAME.stdout"
	taskset -c "$SERVER_CPU" "$@" >"$OUT/server-$SERVER_NAME.stdout" 2>"$OUT/server-$SERVER_NAME.stderr" &
	SERVER_PID=$!
	STARTED+=("$SERVER_PID")
	SERVER_ADDR=
	for _ in $(seq 100); do
		SERVER_ADDR=$(head -1 "$OUT/server-$SERVER_NAME.stdout" 2>/dev/null)
		[[ $SERVER_ADDR == 127.0.0.1:* ]] && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "server $SERVER_NAME did not print its address; see $OUT/server-$SERVER_NAME.stderr"
	stop_server
	return 1
}

free_port() { # a port nobody listens on now; the server started on it says so if it was taken since
	local port
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 20000))
		ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return 0; }
	done
	return 1
}

start_sockperf_server() {
	local port
	port=$(free_port) || return 1
	SERVER_NAME=sockperf
	taskset -c "$SERVER_CPU" sockperf server --tcp -i 127.0.0.1 -p "$port" >"$OUT/server-sockperf.stdout" 2>&1 &
	SERVER_PID=$!
	STARTED+=("$SERVER_PID")
	SERVER_ADDR=127.0.0.1:$port
	for _ in $(seq 100); do
		ss -Htln "sport = :$port" | grep -q . && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "sockperf server did not listen on $port"
	stop_server
	return 1
}

stop_server() { # SIGTERM, 5 s grace, then SIGKILL; our pid only
	[[ -n $SERVER_PID ]] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		log "server $SERVER_NAME (pid $SERVER_PID) ignored SIGTERM for 5 s; killing it"
		kill -KILL "$SERVER_PID" 2>/dev/null
	fi
	wait "$SERVER_PID" 2>/dev/null
	forget "$SERVER_PID"
	SERVER_PID=''
}

server_stats() { # the server's own counters now: "bytes_in bytes_out accepted"
	local file=$OUT/server-$SERVER_NAME.stdout before
	before=$(grep -c '^stats ' "$file")
	kill -USR1 "$SERVER_PID" 2>/dev/null || return 1
	for _ in $(seq 50); do
		(($(grep -c '^stats ' "$file") > before)) && break
		sleep 0.1
	done
	grep '^stats ' "$file" | tail -1 | cut -d' ' -f2- | jq -r '"\(.bytes_in) \(.bytes_out) \(.accepted)"'
}

server_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat" 2>/dev/null; }

server_sockets() { # sockets the server holds, the listener included
	find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' 2>/dev/null | wc -l
}

# ---- clients ------------------------------------------------------------------------------------
EB_P50='' EB_MSGS='' EB_SRVCPU='' EB_CLICPU='' EB_SAT=''
echobench_addr() { # echobench_addr NAME ARGS...: against the running server; sets EB_*
	local name=$1 json=$OUT/$1.json
	shift
	EB_P50=n/a EB_MSGS=n/a EB_SRVCPU=n/a EB_CLICPU=n/a EB_SAT=n/a
	timeout -k 5 "$RUN_LIMIT" bin/echobench -addr "$SERVER_ADDR" -server-pid "$SERVER_PID" -client-cpus "$CLIENT_CPU" \
		-size 64 -d "${DUR}s" -warmup "${WARMUP}s" -o "$json" "$@" >"$OUT/$name.txt" 2>&1 ||
		log "echobench $name failed; see $OUT/$name.txt"
	[[ -s $json ]] || return 1
	read -r EB_P50 EB_MSGS EB_SRVCPU EB_CLICPU EB_SAT < <(jq -r '.summary | "\(.latency_p50_us) \(.msgs_per_s) \(.server_cpu_pct) \(.client_cpu_pct) \(.client_saturated)"' "$json")
}

pingpong_p50() { # pingpong_p50 NAME: p50 RTT in µs against the running server
	timeout -k 5 "$RUN_LIMIT" taskset -c "$CLIENT_CPU" bin/pingpong -a "$SERVER_ADDR" -m 64 -t "$DUR" -w "$WARMUP" >"$OUT/$1.txt" 2>&1 ||
		{ log "pingpong $1 failed; see $OUT/$1.txt"; echo n/a; return 1; }
	sed -n 's/.* p50=\([0-9.]*\) .*/\1/p' "$OUT/$1.txt"
}

sockperf_p50() { # sockperf_p50 NAME: sockperf's full-RTT p50 in µs against the running server
	local port=${SERVER_ADDR##*:} p50
	timeout -k 5 "$RUN_LIMIT" taskset -c "$CLIENT_CPU" sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" -m 64 --full-rtt -t "$DUR" \
		>"$OUT/$1.txt" 2>&1 || log "sockperf $1 exited non-zero; see $OUT/$1.txt"
	p50=$(awk '/percentile 50.000/ { print $NF }' "$OUT/$1.txt")
	echo "${p50:-n/a}"
}

on() { [[ " $SECTIONS " == *" $1 "* ]]; }

# ---- 1. round trip ------------------------------------------------------------------------------
SP_SOCKPERF=n/a PP_SOCKPERF=n/a
declare -A PP EB
rtt() {
	log "1/5 round trip: 1 connection x 64 B, ${DUR}s each"
	if ((HAVE_SOCKPERF)) && start_sockperf_server; then
		SP_SOCKPERF=$(sockperf_p50 rtt-sockperf-on-sockperf)
		PP_SOCKPERF=$(pingpong_p50 rtt-pingpong-on-sockperf)
		stop_server
	fi
	fig rtt_p50.sockperf_on_sockperf_server "$SP_SOCKPERF" us "sockperf ping-pong --full-rtt"
	fig rtt_p50.pingpong_on_sockperf_server "$PP_SOCKPERF" us
	local srv
	for srv in cref $MODELS; do
		PP[$srv]=n/a EB[$srv]=n/a
		if [[ $srv == cref ]]; then
			start_server cref bin/epoll_echo || continue
		else
			start_server "$srv" bin/echoserver -model "$srv" -quiet || continue
		fi
		PP[$srv]=$(pingpong_p50 "rtt-pingpong-on-$srv")
		echobench_addr "rtt-echobench-on-$srv" -c 1 -pipeline 1
		EB[$srv]=$EB_P50
		# A verbatim echo server does not answer sockperf's client: keep the evidence, from a short run.
		if [[ $srv == cref ]] && ((HAVE_SOCKPERF)); then
			timeout -k 5 10 taskset -c "$CLIENT_CPU" sockperf ping-pong --tcp -i 127.0.0.1 -p "${SERVER_ADDR##*:}" -m 64 --full-rtt -t 1 \
				>"$OUT/rtt-sockperf-on-cref.txt" 2>&1
		fi
		stop_server
		fig "rtt_p50.pingpong_on_$srv" "${PP[$srv]}" us
		fig "rtt_p50.echobench_on_$srv" "${EB[$srv]}" us "HDR histogram, 1 us resolution"
	done
}
rtt_summary() {
	echo "1. Round trip p50, 1 conn x 64 B ping-pong (us; lower is better)"
	printf '   %-34s %10s\n' "sockperf on sockperf server" "$SP_SOCKPERF" "pingpong on sockperf server" "$PP_SOCKPERF"
	local srv
	for srv in cref $MODELS; do
		printf '   %-34s %10s    %-34s %10s\n' "pingpong on $srv" "${PP[$srv]}" "echobench on $srv" "${EB[$srv]}"
	done
	echo "   ratios:"
	printf '   %-58s %8s  (yardstick sound: ~1.0)\n' "pingpong / sockperf, both on sockperf server" "$(ratio "$PP_SOCKPERF" "$SP_SOCKPERF")"
	for srv in cref $MODELS; do
		printf '   %-58s %8s\n' "echobench / pingpong on $srv" "$(ratio "${EB[$srv]}" "${PP[$srv]}")"
	done
	printf '   %-58s %8s  (target <= 1.3)\n' "echobench on cref / sockperf on sockperf server" "$(ratio "${EB[cref]}" "$SP_SOCKPERF")"
	for srv in $MODELS; do
		printf '   %-58s %8s\n' "echobench on $srv / sockperf on sockperf server" "$(ratio "${EB[$srv]}" "$SP_SOCKPERF")"
	done
	if [[ -s $OUT/rtt-sockperf-on-cref.txt ]]; then
		echo "   sockperf's client against a verbatim echo server (cref): $(grep -E 'No messages|Round trip' "$OUT/rtt-sockperf-on-cref.txt" | sed 's/^sockperf: //' | head -1)"
	fi
}

# ---- 2. throughput ------------------------------------------------------------------------------
declare -A TP TPEFF TPCLI
throughput() {
	log "2/5 throughput: $CONNS connections x 64 B ping-pong, C reference vs epoll"
	local srv
	for srv in cref epoll; do
		TP[$srv]=n/a TPEFF[$srv]=n/a TPCLI[$srv]=n/a
		if [[ $srv == cref ]]; then
			start_server cref bin/epoll_echo || continue
		else
			start_server epoll bin/echoserver -model epoll -quiet || continue
		fi
		echobench_addr "tput-$srv" -c "$CONNS" -pipeline 1
		stop_server
		TP[$srv]=$(awk -v m="$EB_MSGS" 'BEGIN { if (m == "n/a") print m; else printf "%.0f", m }')
		TPCLI[$srv]="$(awk -v c="$EB_CLICPU" 'BEGIN { if (c == "n/a") print c; else printf "%.0f%%", c }') saturated=$EB_SAT"
		# msgs per server CPU-second: still compares the servers when echobench, not the server, is the limit.
		TPEFF[$srv]=$(awk -v m="$EB_MSGS" -v c="$EB_SRVCPU" 'BEGIN { if (m == "n/a" || c + 0 == 0) print "n/a"; else printf "%.0f", m / (c / 100) }')
		fig "tput.$srv.msgs_per_s" "${TP[$srv]}" msgs/s "client CPU ${TPCLI[$srv]}"
		fig "tput.$srv.server_cpu_pct" "$(awk -v c="$EB_SRVCPU" 'BEGIN { if (c == "n/a") print c; else printf "%.1f", c }')" "%"
		fig "tput.$srv.msgs_per_server_cpu_s" "${TPEFF[$srv]}" msgs/cpu-s
	done
}
throughput_summary() {
	echo "2. Throughput, $CONNS conns x 64 B ping-pong (echobench)"
	local srv
	for srv in cref epoll; do
		printf '   %-8s %12s msgs/s  %12s msgs per server CPU-s   client CPU %s\n' "$srv" "${TP[$srv]}" "${TPEFF[$srv]}" "${TPCLI[$srv]}"
	done
	printf '   %-58s %8s  (target >= 0.9)\n' "epoll / C reference, msgs/s" "$(ratio "${TP[epoll]}" "${TP[cref]}")"
	printf '   %-58s %8s\n' "epoll / C reference, msgs per server CPU-second" "$(ratio "${TPEFF[epoll]}" "${TPEFF[cref]}")"
	echo "   (when echobench is saturated, msgs/s measures the client; msgs per server CPU-second still compares the servers)"
}

# ---- 3. byte counts -----------------------------------------------------------------------------
declare -A BYTES
bytes() {
	log "3/5 byte counts: echobench against each model's own counters"
	local m json
	for m in $MODELS; do
		json=$OUT/bytes-$m.json
		BYTES[$m]=n/a
		timeout -k 5 "$RUN_LIMIT" bin/echobench -model "$m" -server-bin bin/echoserver -server-cpus "$SERVER_CPU" -client-cpus "$CLIENT_CPU" \
			-c 100 -size 64 -pipeline 4 -d "${DUR}s" -warmup "${WARMUP}s" -o "$json" >"$OUT/bytes-$m.txt" 2>&1 ||
			log "echobench bytes-$m failed; see $OUT/bytes-$m.txt"
		[[ -s $json ]] && BYTES[$m]=$(jq -r '.runs[0].byte_check // empty | "in \(.in_diff_pct)% out \(.out_diff_pct)%  (server in \(.server_in) out \(.server_out), echobench sent \(.client_sent) received \(.client_received))"' "$json")
		fig "bytes.$m" "${BYTES[$m]:-n/a}" "server-client diff" "echobench -model, server's exit stats"
	done
}
bytes_summary() {
	echo "3. Byte counts, (server - echobench) / echobench, 100 conns x 64 B, pipeline 4 (target |diff| <= 2%)"
	local m
	for m in $MODELS; do printf '   %-8s %s\n' "$m" "${BYTES[$m]:-n/a}"; done
}

# ---- 4. tcpkali -----------------------------------------------------------------------------------
KALI_ROWS=()
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# server_side NAME SKIP CLIENT-CMD...: run the client (@ADDR@ stands for the server's address)
# against a fresh epoll server and add one row to KALI_ROWS, every figure seen from the server:
# its own byte counters and CPU over DUR seconds that begin SKIP seconds after the client starts
# (its ramp-up), and the most connections it held at once over the client's whole life.
server_side() {
	local name=$1 skip=$2 b0='' b1='' a0 a1 c0 c1 t0 t1 start peak=0 peak_client=0 n port client arg args=()
	shift 2
	start_server "kali-$name" bin/echoserver -model epoll -quiet || return 1
	port=${SERVER_ADDR##*:}
	for arg in "$@"; do args+=("${arg//@ADDR@/$SERVER_ADDR}"); done
	start=$(now_ms)
	"${args[@]}" >"$OUT/kali-$name.txt" 2>&1 &
	client=$!
	STARTED+=("$client")
	while kill -0 "$client" 2>/dev/null; do
		n=$(server_sockets)
		((n - 1 > peak)) && peak=$((n - 1)) # less the listener
		n=$(ss -Htn state established "( dport = :$port )" | wc -l)
		((n > peak_client)) && peak_client=$n
		if [[ -z $b0 ]] && (($(now_ms) - start >= skip * 1000)); then
			read -r b0 _ a0 < <(server_stats)
			c0=$(server_cpu_ticks) t0=$(now_ms)
		elif [[ -n $b0 && -z $b1 ]] && (($(now_ms) - t0 >= DUR * 1000)); then
			read -r b1 _ a1 < <(server_stats)
			c1=$(server_cpu_ticks) t1=$(now_ms)
		fi
		sleep 0.2
	done
	wait "$client"
	forget "$client"
	stop_server
	if [[ -z $b1 ]]; then
		KALI_ROWS+=("$(printf '%-26s window not reached: the client ended first; see %s' "$name" "$OUT/kali-$name.txt")")
	else
		KALI_ROWS+=("$(awk -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" \
			-v a="$((a1 - a0))" -v peak="$peak" -v pc="$peak_client" -v name="$name" 'BEGIN {
			s = (t1 - t0) / 1000
			printf "%-26s %8.1f MB/s in  %9.0f msgs/s  server CPU %5.1f%%  peak conns: server %5d, client %5d  accepted in window %d",
				name, (b1 - b0) / s / 1e6, (b1 - b0) / 64 / s, (c1 - c0) / hz / s * 100, peak, pc, a
		}')")
	fi
	fig "kali.$name" "${KALI_ROWS[-1]}" row
}
kali() {
	if ! ((HAVE_TCPKALI)); then
		log "4/5 tcpkali is not on PATH: skipped (this script never builds or fetches it)"
		return
	fi
	log "4/5 tcpkali vs echobench, from the server's side"
	local msg c k skip rate_flag=()
	msg=$(printf '%64s' '' | tr ' ' x)
	[[ -n $KALI_CONNECT_RATE ]] && rate_flag=(--connect-rate "$KALI_CONNECT_RATE")
	for c in $KALI_CONNS; do
		# tcpkali opens ${KALI_CONNECT_RATE:-100} connections a second: the window starts once all are open.
		skip=$((1 + (c + ${KALI_CONNECT_RATE:-100} - 1) / ${KALI_CONNECT_RATE:-100}))
		server_side "tcpkali-c$c" "$skip" timeout -k 5 $((skip + DUR + 30)) taskset -c "$CLIENT_CPU" \
			tcpkali -c "$c" "${rate_flag[@]}" -T "$((skip + DUR + 1))s" -m "$msg" @ADDR@
		for k in $KALI_PIPELINES; do
			server_side "echobench-c$c-pipeline$k" "$skip" timeout -k 5 $((skip + DUR + 30)) bin/echobench -addr @ADDR@ \
				-client-cpus "$CLIENT_CPU" -c "$c" -size 64 -pipeline "$k" -warmup "${skip}s" -d "$((DUR + 1))s" \
				-o "$OUT/kali-echobench-c$c-pipeline$k.json"
		done
	done
}
kali_summary() {
	if ((HAVE_TCPKALI)); then
		echo "4. tcpkali -m 64 B (streaming) vs echobench -pipeline K, seen from an epoll server"
		printf '   %s\n' "${KALI_ROWS[@]}"
		echo "   (msgs/s = server bytes in / 64 over ${DUR}s after ramp-up; what each client claims is in kali-*.txt)"
	else
		echo "4. tcpkali: not on PATH, skipped"
	fi
}

# ---- 5. fixed rate ------------------------------------------------------------------------------
RATE_TSV=$OUT/fixedrate.tsv
fixedrate() {
	log "5/5 fixed rate: $RATE_CONNS connections x 64 B at $RATES msgs/s (0 = closed loop), C reference vs $RATE_MODELS, $RATE_REPEATS repeats"
	printf 'server\trate\trepeat\tmsgs_per_s\tserver_us_per_msg\tclient_us_per_msg\tclient_user_us_per_msg\tlag_p99_us\tp99_us\tclient_steal_pct\tserver_steal_pct\n' >"$RATE_TSV"
	local rep rate srv order name json rate_flag
	for rep in $(seq "$RATE_REPEATS"); do
		order="cref openloop $RATE_MODELS"
		((rep % 2 == 0)) && order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
		for rate in $RATES; do
			((rate > 0)) && blackout_run "$rate" "$rep"
			for srv in $order; do
				if [[ $srv == openloop ]]; then
					((rate > 0)) && openloop_run "$rate" "$rep"
					continue
				fi
				if [[ $srv == cref ]]; then
					start_server cref bin/epoll_echo || continue
				else
					start_server "$srv" bin/echoserver -model "$srv" -quiet || continue
				fi
				name=rate-$srv-$rate-$rep json=$OUT/$name.json rate_flag=()
				((rate > 0)) && rate_flag=(-rate "$rate")
				echobench_addr "$name" -c "$RATE_CONNS" -pipeline 1 "${rate_flag[@]}"
				stop_server
				[[ -s $json ]] || continue
				# CPU over the window per message of the window; the user share of the whole run
				# applied to echobench's window CPU (the JSON splits user and system over the run).
				jq -r --arg s "$srv" --arg r "$rate" --arg k "$rep" '.runs[0] as $x | ($x.messages) as $m |
					if $m == 0 or $x.server == null then empty else
					[$s, $r, $k, $x.msgs_per_s, ($x.server.window_cpu_s / $m * 1e6), ($x.client.window_cpu_s / $m * 1e6),
					 ($x.client.window_cpu_s / $m * 1e6 * (if $x.client.cpu_s > 0 then $x.client.cpu_user_s / $x.client.cpu_s else 0 end)),
					 (if ($x.schedule_lag.count // 0) > 0 then $x.schedule_lag.p99_us else "n/a" end), $x.latency.p99_us,
					 ($x.client.steal_pct_of_window // "n/a"), ($x.server.steal_pct_of_window // "n/a")] | @tsv end' "$json" >>"$RATE_TSV"
			done
		done
	done
}
# openloop_run RATE REPEAT: the C server loaded by bin/openloop, one row of fixedrate.tsv (no
# latency: the yardstick measures cost and schedule lag only)
openloop_run() {
	local rate=$1 rep=$2 name=rate-openloop-$1-$2 line steal
	start_server cref bin/epoll_echo || return
	steal_begin
	timeout -k 5 "$RUN_LIMIT" taskset -c "$CLIENT_CPU" bin/openloop -a "$SERVER_ADDR" -r "$rate" -c "$RATE_CONNS" -m 64 \
		-t "$DUR" -w "$WARMUP" -P "$SERVER_PID" >"$OUT/$name.txt" 2>&1 || log "openloop $name failed; see $OUT/$name.txt"
	steal=$(steal_end)
	stop_server
	line=$(grep '^openloop ' "$OUT/$name.txt") || return
	awk -v r="$rate" -v k="$rep" -v st="${steal% *}" -v sst="${steal#* }" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["msgs"] == 0 || v["server_us_per_msg"] == "") exit
		printf "openloop\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\tn/a\t%s\t%s\n", r, k, v["msgs"] / v["window_s"], v["server_us_per_msg"],
			v["us_per_msg"], v["user_us_per_msg"], v["lag_p99_us"], st, sst }' <<<"$line" >>"$RATE_TSV"
}
# blackout_run RATE REPEAT: bin/blackout alone on the client's CPU, one row of fixedrate.tsv whose
# only figure is the lag p99 that the CPU's own gaps impose (the rate is where it was taken)
blackout_run() {
	local name=rate-blackout-$1-$2 line steal
	steal_begin
	timeout -k 5 "$RUN_LIMIT" taskset -c "$CLIENT_CPU" bin/blackout -t "$DUR" >"$OUT/$name.txt" 2>&1 ||
		{ log "blackout $name failed; see $OUT/$name.txt"; return; }
	steal=$(steal_end)
	line=$(grep '^blackout ' "$OUT/$name.txt") || return
	awk -v r="$1" -v k="$2" -v st="${steal% *}" -v sst="${steal#* }" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "blackout\t%s\t%s\tn/a\tn/a\tn/a\tn/a\t%s\tn/a\t%s\t%s\n", r, k, v["floor_p99_us"], st, sst }' <<<"$line" >>"$RATE_TSV"
}
# steal_begin, then steal_end: "CLIENT SERVER", the share of the wall time between them, in
# percent, that the hypervisor took from the client's and the server's CPU (/proc/stat's steal, in
# 10 ms ticks), as echobench's JSON gives it for its own window (report.StealSharePct has the why);
# n/a where not counted
STEAL_T0='' STEAL_C0='' STEAL_S0=''
steal_ticks() { awk -v c="cpu$1" '$1 == c { print ($9 == "" ? "n/a" : $9) }' /proc/stat; }
steal_begin() { STEAL_T0=$(date +%s%N) STEAL_C0=$(steal_ticks "$CLIENT_CPU") STEAL_S0=$(steal_ticks "$SERVER_CPU"); }
steal_end() {
	local c1 s1 t1
	c1=$(steal_ticks "$CLIENT_CPU") s1=$(steal_ticks "$SERVER_CPU") t1=$(date +%s%N)
	[[ $STEAL_C0 =~ ^[0-9]+$ && $c1 =~ ^[0-9]+$ && $STEAL_S0 =~ ^[0-9]+$ && $s1 =~ ^[0-9]+$ ]] || { echo "n/a n/a"; return; }
	awk -v c=$((c1 - STEAL_C0)) -v s=$((s1 - STEAL_S0)) -v ns=$((t1 - STEAL_T0)) 'BEGIN { printf "%.2f %.2f\n", c * 1e9 / ns, s * 1e9 / ns }'
}
# rate_stat COLUMN [MAX_STEAL [both]]: "server rate median min max" per (server, rate) from
# fixedrate.tsv, of the rows whose client steal (with both: and server steal) was under MAX_STEAL
# percent if given
rate_stat() {
	tail -n +2 "$RATE_TSV" | awk -F'\t' -v col="$1" -v cap="${2:-}" -v both="${3:-}" '$col != "n/a" &&
		(cap == "" || ($10 != "n/a" && $10 < cap + 0 && (both == "" || ($11 != "n/a" && $11 < cap + 0)))) { print $1 "\t" $2 "\t" $col }' | sort -t$'\t' -k1,1 -k2,2n -k3,3g |
		awk -F'\t' '{ k = $1 "\t" $2; v[k, ++n[k]] = $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k } }
		END { for (i = 1; i <= nk; i++) { k = keys[i]; c = n[k]
			med = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
			printf "%s\t%.3f\t%.3f\t%.3f\n", k, med, v[k, 1], v[k, c] } }'
}
fixedrate_summary() {
	echo "5. Fixed rate, $RATE_CONNS conns x 64 B, open loop (rate 0 = closed loop), $RATE_REPEATS alternated repeats: median [min-max]"
	[[ -s $RATE_TSV ]] || { echo "   no runs"; return; }
	local col label
	for col in 5 5q 6 7 8 8q 9 10 11; do
		case $col in
		5) label="server CPU us per message (x = median over the C reference's at that rate)" ;;
		6) label="client CPU us per message (echobench; the openloop row is bin/openloop, the floor; x openloop = echobench over it)" ;;
		7) label="client user CPU us per message" ;;
		8) label="client schedule lag p99, us (open loop only; the blackout row is the CPU's own floor, bin/blackout)" ;;
		5q) label="the same, of the runs with no steal counted on either CPU: the host moves the server's cost too (a stolen server batches more per wake)" ;;
		8q) label="the same, of the runs the host left alone: no client CPU steal counted (/proc/stat, 10 ms ticks; echobench flags a run at report.StealSharePct)" ;;
		9) label="corrected latency p99, us" ;;
		10) label="client CPU steal, % of the window (taken by the hypervisor; openloop and blackout rows: the whole run)" ;;
		11) label="server CPU steal, % of the window (the same on the server's CPU)" ;;
		esac
		echo "   $label"
		local args=("$col")
		[[ $col == 8q ]] && args=(8 "$STEAL_QUIET")
		[[ $col == 5q ]] && args=(5 "$STEAL_QUIET" both)
		# (outside the pipeline below, whose commands run in subshells)
		[[ -n $(rate_stat "${args[@]}") ]] || { echo "     none${args[1]:+: the host stole in every run}"; continue; }
		rate_stat "${args[@]}" | awk -F'\t' -v ratio="$([[ $col == 5* ]] && echo 1 || echo 0)" -v cratio="$([[ $col == 6 ]] && echo 1 || echo 0)" '
			{ row[$1] = row[$1] sprintf("  %8s: %9.2f [%.2f-%.2f]", ($2 == 0 ? "closed" : $2 "/s"), $3, $4, $5)
			  med[$1, $2] = $3; if ($1 == "cref") cref[$2] = $3; if ($1 == "openloop") ol[$2] = $3; rates[$2] = 1
			  if (!($1 in seen)) { seen[$1] = 1; names[++n] = $1 } }
			END { for (i = 1; i <= n; i++) { s = names[i]; line = sprintf("     %-9s%s", s, row[s])
				if (ratio && s != "cref") { x = ""; for (r in rates) if (cref[r] > 0 && (s, r) in med) x = x sprintf(" %s %.2f", (r == 0 ? "closed" : r), med[s, r] / cref[r]); if (x != "") line = line "   x C:" x }
				if (cratio && s != "openloop") { line = line "   x openloop:"; for (r in rates) if (ol[r] > 0 && (s, r) in med) line = line sprintf(" %s %.2f", r, med[s, r] / ol[r]) }
				print line } }'
	done
	for rate in $RATES; do
		fig "fixedrate.$rate" "$(rate_stat 5 | awk -F'\t' -v r="$rate" '$2 == r { printf "%s %.2f ", $1, $3 }')" "server us/msg medians"
	done
}

# ---- run ----------------------------------------------------------------------------------------
on 1 && rtt
on 2 && throughput
on 3 && bytes
on 4 && kali
on 5 && fixedrate
{
	cat "$OUT/conditions.txt"
	echo "end          $(date -u +%FT%TZ), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
	on 1 && { echo; rtt_summary; }
	on 2 && { echo; throughput_summary; }
	on 3 && { echo; bytes_summary; }
	on 4 && { echo; kali_summary; }
	on 5 && { echo; fixedrate_summary; }
	echo
	echo "raw outputs and figures.tsv: $OUT/"
} | tee "$OUT/summary.txt"
