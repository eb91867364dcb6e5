#!/usr/bin/env bash
# W2 on PostgreSQL with 1,000,000 finished tasks in the table, against a fresh table:
# 20,000 queued no-op tasks drained by taskq-bench-worker with 2 workers, runs
# alternating (fresh, full, fresh, full, ...), tasks/s of each and the ratio of medians.
#
#   Benchmarks/pg_scale.sh URL [REPS]
#
# URL names a server where this user may create databases (e.g. the harness's private
# cluster: ../shared/bench/pg/cluster.sh start /tmp/pgs prints one); two databases,
# taskq_scale_fresh and taskq_scale_full, are created and dropped. The finished rows are
# written by one INSERT ... SELECT (as taskq's own connections write: taskq.writer set),
# then VACUUM ANALYZE, as autovacuum would leave the table. Uses the release binaries in
# $TASKQ_BIN_DIR (default .build/release).
set -euo pipefail
url=${1:?usage: pg_scale.sh URL [REPS]}; reps=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${TASKQ_BIN_DIR:-$here/.build/release}
n=${N:-20000} finished=${FINISHED:-1000000}
# The URL with another database: postgresql:///NAME?... or postgresql://host/NAME?...
with_db() { printf '%s' "$url" | sed -E "s#^(postgres(ql)?://[^/]*/)[^?]*#\\1$1#"; }
fresh=$(with_db taskq_scale_fresh) full=$(with_db taskq_scale_full)
lines=$(mktemp); trap 'rm -f "$lines"' EXIT
for i in $(seq 1 $n); do printf '{"seq":%d,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}\n' "$i"; done > "$lines"

for db in taskq_scale_fresh taskq_scale_full; do
  psql "$url" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
"$bin/taskq" init --db "$fresh" >/dev/null
"$bin/taskq" init --db "$full" >/dev/null
t0=$(date +%s.%N)
psql "$full" -qAt -v ON_ERROR_STOP=1 <<SQL
SET taskq.writer = 'taskq';
INSERT INTO tasks (kind, state, payload, attempts, max_attempts, created_at, started_at, finished_at, result)
SELECT 'bench-noop', 'succeeded', '{"seq":' || g || '}', 1, 3, now(), now(), now(), '\x3130'::bytea
FROM generate_series(1, $finished) g;
VACUUM ANALYZE tasks;
SQL
echo "full table: $finished finished tasks written in $(echo "$(date +%s.%N) - $t0" | bc) s"

rate() {  # enqueue n, drain with 2 workers, print tasks/s
  "$bin/taskq" enqueue bench-noop --lines --commit-every 1000 --quiet --db "$1" < "$lines"
  local s
  s=$("$bin/taskq-bench-worker" --db "$1" --workers 2 --until-empty --report | tail -1 \
      | sed -E 's/.*"elapsed_s": *([0-9.]+).*/\1/')
  echo "$n / $s" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
f=() g=()
for r in $(seq 1 "$reps"); do
  f+=("$(rate "$fresh")"); g+=("$(rate "$full")")
  printf 'rep %d: fresh %.0f tasks/s, with %d finished %.0f tasks/s\n' "$r" "${f[-1]}" "$finished" "${g[-1]}"
done
mf=$(printf '%s\n' "${f[@]}" | median) mg=$(printf '%s\n' "${g[@]}" | median)
printf 'W2 on PostgreSQL, 2 workers, medians of %d: fresh %.0f tasks/s, with %d finished %.0f tasks/s (%.0f%% of fresh; goal >= 80%%)\n' \
  "$reps" "$mf" "$finished" "$mg" "$(echo "$mg / $mf * 100" | bc -l)"
for db in taskq_scale_fresh taskq_scale_full; do psql "$url" -qAtc "DROP DATABASE $db"; done
