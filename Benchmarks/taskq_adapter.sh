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
# SQLite: synchronous=NORMAL unless the harness asks for FULL. PostgreSQL: the harness
# passes BENCH_SYNC=default (keep the server's synchronous_commit); taskq's
# --synchronous full is synchronous_commit=on, PostgreSQL's default.
case "${BENCH_SYNC:-NORMAL}" in FULL|default) sync=full ;; *) sync=normal ;; esac

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
case "$db" in postgres://*|postgresql://*) pg=1 ;; *) pg= ;; esac
# How many bench tasks succeeded, and the journal mode, read with the database's own shell.
count="SELECT count(*) FROM tasks WHERE kind = 'bench-noop' AND state = 'succeeded'"
sql() { if [ -n "$pg" ]; then psql "$db" -Atqc "$1"; else sqlite3 "$db" "$1"; fi; }
case "$sub" in
  enqueue) # Like the peers (which create their tables when they open the queue,
           # before the first line), the database is created before the timed run.
           if [ -n "$pg" ] || [ ! -s "$db" ]; then "$bin/taskq" init --db "$db" >/dev/null; fi
           exec "$bin/taskq" enqueue bench-noop --lines --commit-every "$batch" --quiet --report \
             --db "$db" --synchronous "$sync" ;;
  drain)   exec "$bin/taskq-bench-worker" --db "$db" --workers "$workers" --until-empty --report --synchronous "$sync" ;;
  serve)   exec "$bin/taskq-bench-worker" --db "$db" --workers "$workers" --synchronous "$sync" ;;
  results) sql "$count" ;;
  info)
    if [ -n "$pg" ] || [ ! -s "$db" ]; then "$bin/taskq" init --db "$db" >/dev/null; fi
    if [ -n "$pg" ]; then
      sc=$(sql "SHOW synchronous_commit")
      printf '{"peer": "%s", "version": "%s", "tables": "tasks, processes, task_attempts (migrations/postgres)", "synchronous_commit": "%s", "library_default": "the server'"'"'s synchronous_commit (taskq --synchronous full = on)", "claim": "one transaction: lock the owner rows, finish the previous batch (one fenced UPDATE over unnest of ids, owners, attempts, results), claim up to k with one UPDATE over two partial indexes FOR UPDATE SKIP LOCKED (k adapts 1..512)", "workers": "processes, one connection each"}\n' "${TASKQ_PEER_NAME:-taskq}" "$("$bin/taskq" --version)" "$sc"
      exit 0
    fi
    jm=$(sqlite3 "$db" "PRAGMA journal_mode")
    printf '{"peer": "%s", "journal_mode": "%s", "synchronous": "%s", "library_default": "WAL, synchronous=NORMAL (taskq --synchronous normal|full)", "claim": "BEGIN IMMEDIATE; finish previous batch (one fenced UPDATE over its id range, each row checked against its own attempt) + due delayed tasks (partial index, usually one probe) + SELECT .. ORDER BY priority DESC, id LIMIT k (partial index of ready tasks; k adapts 1..512), merged in claim order + UPDATE .. WHERE id BETWEEN first AND last (or IN the ids, via json_each, when they are not consecutive)"}\n' "${TASKQ_PEER_NAME:-taskq}" "$jm" "$sync"
    ;;
  *) exit 2 ;;
esac
