#!/usr/bin/env bash
# W1 and W1b four ways, interleaved, REPS times (default 5): the harness's C limit
# program (its minimal table) on the system's SQLite, as the harness runs it; the
# same program on the SQLite taskq can bundle (Sources/CSQLiteBundled: a like-for-like
# limit); the statements taskq runs, in C on taskq's own schema and taskq's SQLite
# (Benchmarks/ceiling/schema_ceiling.c: the ceiling for taskq's schema); and
# `taskq enqueue --lines` itself. Prints medians and ratios to the harness's limit.
#   Benchmarks/schema_ceiling.sh [REPS]
# Needs cc and the system's SQLite headers (libsqlite3-dev); BENCH_DIR (default
# ../shared/bench beside the checkout) for limit/limit.c; the release taskq in
# $TASKQ_BIN_DIR or .build/release (built when missing: the default build, on the
# system's SQLite; for the bundled one, build with --traits BundledSQLite and set
# TASKQ_BIN_DIR, Sources/CSQLite/README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-5}
bench=${BENCH_DIR:-$here/../shared/bench}
bin=${TASKQ_BIN_DIR:-$here/.build/release}
if [ ! -x "$bin/taskq" ]; then (cd "$here" && swift build -c release --static-swift-stdlib --product taskq >&2); fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/limit" "$bench/limit/limit.c" -lsqlite3
echo "compiling taskq's SQLite (about a minute)" >&2
cc -O2 -w -c -DTASKQ_BUNDLED_SQLITE -o "$work/sqlite3.o" "$here/Sources/CSQLiteBundled/csqlite.c"
cc -O2 -I "$here/Sources/CSQLiteBundled/include" -o "$work/limit_t" "$bench/limit/limit.c" "$work/sqlite3.o" -lm
cc -O2 -I "$here/Sources/CSQLiteBundled/include" -o "$work/ceiling" "$here/Benchmarks/ceiling/schema_ceiling.c" "$work/sqlite3.o" -lm
python3 -c '
for i in range(20000):
    head = "{\"seq\":%d,\"enq_ns\":0,\"pad\":\"" % i
    print(head + "x" * (100 - len(head) - 2) + "\"}")' > "$work/lines"

fresh() { rm -f "$work"/q.db*; "$bin/taskq" init --db "$work/q.db" >/dev/null; }
taskq_rate() {
  fresh
  "$bin/taskq" enqueue bench-noop --lines --commit-every "$1" --quiet --report --db "$work/q.db" < "$work/lines" |
    python3 -c 'import json, sys; d = json.loads(sys.stdin.read().splitlines()[-1]); print(round(d["enqueued"] / d["elapsed_s"]))'
}
declare -A r
for _ in $(seq "$reps"); do
  for b in 1 100; do
    case $b in 1) case_name=insert1.normal ;; *) case_name=insert100.normal ;; esac
    mkdir -p "$work/lx"; rm -rf "$work"/lx/*
    r[limit$b]+="$("$work/limit" --dir "$work/lx" --n 20000 --max-seconds 4 --only $case_name | awk -v c=$case_name '$2 == c {print $5}') "
    rm -rf "$work"/lx/*
    r[tlimit$b]+="$("$work/limit_t" --dir "$work/lx" --n 20000 --max-seconds 4 --only $case_name | awk -v c=$case_name '$2 == c {print $5}') "
    fresh; r[c$b]+="$("$work/ceiling" "$work/q.db" 20000 $b | awk '{print $1}') "
    r[taskq$b]+="$(taskq_rate $b) "
  done
done
for k in limit1 tlimit1 c1 taskq1 limit100 tlimit100 c100 taskq100; do echo "$k ${r[$k]}"; done | python3 -c '
import statistics, sys
names = {"limit": "limit (C, system SQLite)", "tlimit": "limit (C, taskq SQLite)",
         "c": "C on taskq schema+SQLite", "taskq": "taskq enqueue --lines"}
for line in sys.stdin:
    key, *vals = line.split(); v = [float(x) for x in vals]; m = statistics.median(v)
    kind = key.rstrip("0123456789"); batch = key[len(kind):]
    if kind == "limit": lim = m
    print("W1%s %-27s median %9.0f rows/s  %4.0f%% of the limit  runs %s" % ("" if batch == "1" else "b", names[kind], m, 100 * m / lim, " ".join(str(int(x)) for x in v)))'
