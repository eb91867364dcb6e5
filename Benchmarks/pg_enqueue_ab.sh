#!/usr/bin/env bash
# Two or more taskq binaries' producers on PostgreSQL, alternating: W1 (5,000 lines,
# one commit per line) and W1b (100,000 lines, commits of 100) with `taskq enqueue
# --lines`, each round a fresh database per binary. Prints every round and the medians.
# For a change to the producer: build the binary before and after it, and compare them
# in one run (the machine's speed drifts from one hour to the next).
#
#   Benchmarks/pg_enqueue_ab.sh URL ROUNDS TASKQ_BINARY...
#
# URL names a server where this user may create databases (a private one:
# ../shared/bench/pg/cluster.sh start /tmp/pgs); the database taskq_enqueue_ab is
# created and dropped.
set -euo pipefail
url=${1:?usage: pg_enqueue_ab.sh URL ROUNDS TASKQ_BINARY...}
rounds=${2:?usage: pg_enqueue_ab.sh URL ROUNDS TASKQ_BINARY...}
shift 2
[ $# -ge 1 ] || { echo "pg_enqueue_ab: name at least one taskq binary" >&2; exit 2; }
db=$(echo "$url" | sed -E 's#(postgres(ql)?://[^/]*/)[^?]*#\1taskq_enqueue_ab#')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; psql "$url" -qc "DROP DATABASE IF EXISTS taskq_enqueue_ab" >/dev/null 2>&1 || true' EXIT

# ~100-byte JSON payloads, as the harness's
pad=$(printf 'x%.0s' $(seq 60))
for i in $(seq 100000); do echo "{\"seq\":$i,\"enq_ns\":0,\"pad\":\"$pad\"}"; done > "$tmp/lines100k"
head -5000 "$tmp/lines100k" > "$tmp/lines5k"

rate() {  # tasks/s of `$1 enqueue --lines --commit-every $2 < $3`
    "$1" enqueue bench-noop --lines --commit-every "$2" --quiet --report --db "$db" < "$3" |
        awk -F'[:,}]' '{ printf "%.0f", $2 / $4 }'
}
for r in $(seq "$rounds"); do
    for b in "$@"; do
        psql "$url" -qc "DROP DATABASE IF EXISTS taskq_enqueue_ab" -c "CREATE DATABASE taskq_enqueue_ab" >/dev/null 2>&1
        "$b" init --db "$db" >/dev/null
        echo "$b W1 $(rate "$b" 1 "$tmp/lines5k") W1b $(rate "$b" 100 "$tmp/lines100k")" | tee -a "$tmp/results" >&2
    done
done
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "# pg_enqueue_ab: $rounds rounds, W1 5,000 tasks, W1b 100,000 tasks; tasks/s, medians"
for b in "$@"; do
    w1=$(awk -v b="$b" '$1 == b { print $3 }' "$tmp/results" | median)
    w1b=$(awk -v b="$b" '$1 == b { print $5 }' "$tmp/results" | median)
    echo "$b  W1 $w1  W1b $w1b"
done
