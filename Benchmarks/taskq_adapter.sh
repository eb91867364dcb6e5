#!/usr/bin/env bash
# taskq's adapter for ../shared/bench (see its README, "Adapter contract").
#   run_peers.sh --add "taskq cli W1,W1b,W2,W3 $PWD/Benchmarks/taskq_adapter.sh"
# Uses the release binaries in $TASKQ_BIN_DIR (or the directory of $TASKQ), else
# builds them once with `swift build -c release --static-swift-stdlib`.
#   enqueue: the taskq CLI (`enqueue bench-noop --lines`): one durable commit per
#            line read, or per --commit-every B lines.
#   drain/serve: the benchmarks' worker program (Benchmarks/taskq-bench-worker),
#            whose "bench-noop" handler is Swift code inside the worker process that
#            writes the audit line and returns the payload length.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${TASKQ_BIN_DIR:-}" ]; then bin=$TASKQ_BIN_DIR
elif [ -n "${TASKQ:-}" ]; then bin=$(dirname "$TASKQ")
else
  bin=$here/.build/release
  if [ ! -x "$bin/taskq" ] || [ ! -x "$bin/taskq-bench-worker" ]; then
    (cd "$here" && swift build -c release --static-swift-stdlib --product taskq >&2 && swift build -c release --static-swift-stdlib --product taskq-bench-worker >&2)
  fi
fi
case "${BENCH_SYNC:-NORMAL}" in FULL) sync=full ;; *) sync=normal ;; esac

sub=${1:?usage: taskq_adapter.sh enqueue|drain|serve|results|info --db PATH ...}; shift
db= batch=1 workers=2
while [ $# -gt 0 ]; do
  case "$1" in
    --db) db=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    *) echo "taskq_adapter: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$sub" in
  enqueue) # Like the peers (which create their tables when they open the queue,
           # before the first line), the database is created before the timed run.
           [ -s "$db" ] || "$bin/taskq" init --db "$db" >/dev/null
           exec "$bin/taskq" enqueue bench-noop --lines --commit-every "$batch" --quiet --report \
             --db "$db" --synchronous "$sync" ;;
  drain)   exec "$bin/taskq-bench-worker" --db "$db" --workers "$workers" --until-empty --report --synchronous "$sync" ;;
  serve)   exec "$bin/taskq-bench-worker" --db "$db" --workers "$workers" --synchronous "$sync" ;;
  results) exec sqlite3 "$db" "SELECT count(*) FROM tasks WHERE kind = 'bench-noop' AND state = 'succeeded'" ;;
  info)
    [ -s "$db" ] || "$bin/taskq" init --db "$db" >/dev/null
    jm=$(sqlite3 "$db" "PRAGMA journal_mode")
    printf '{"peer": "taskq", "journal_mode": "%s", "synchronous": "%s", "library_default": "WAL, synchronous=NORMAL (taskq --synchronous normal|full)", "claim": "BEGIN IMMEDIATE; finish previous batch (one fenced UPDATE over its id range, each row checked against its own attempt) + due delayed tasks (partial index, usually one probe) + SELECT .. ORDER BY priority DESC, id LIMIT k (partial index of ready tasks; k adapts 1..512), merged in claim order + UPDATE .. WHERE id BETWEEN first AND last (or IN the ids, via json_each, when they are not consecutive)"}\n' "$jm" "$sync"
    ;;
  *) exit 2 ;;
esac
