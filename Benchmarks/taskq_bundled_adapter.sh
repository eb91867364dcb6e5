#!/usr/bin/env bash
# taskq built with the BundledSQLite trait, for ../shared/bench beside the default build:
#   run_peers.sh --own-sqlite "taskq-bundled=$PWD/Benchmarks/bundled_sqlite.c" \
#     --add "taskq cli W1,W1b,W2,W3 $PWD/Benchmarks/taskq_adapter.sh" \
#     --add "taskq-bundled cli W1,W1b,W2,W3 $PWD/Benchmarks/taskq_bundled_adapter.sh"
# Uses the release binaries in $TASKQ_BUNDLED_BIN_DIR, else builds them once into
# .build-bundled-release (their own scratch path, so the default build stays as it is).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${TASKQ_BUNDLED_BIN_DIR:-$here/.build-bundled-release/release}
if [ ! -x "$bin/taskq" ] || [ ! -x "$bin/taskq-bench-worker" ]; then
  for product in taskq taskq-bench-worker; do
    (cd "$here" && swift build -c release --static-swift-stdlib --traits BundledSQLite \
      --scratch-path .build-bundled-release --product "$product" >&2)
  done
fi
TASKQ_BIN_DIR=$bin TASKQ_PEER_NAME=taskq-bundled exec "$here/Benchmarks/taskq_adapter.sh" "$@"
