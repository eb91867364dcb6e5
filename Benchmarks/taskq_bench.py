#!/usr/bin/env python3
"""taskq's own benchmark: every row of issue 5, against taskq alone.

  Benchmarks/taskq_bench.py [--quick] [--only w1,w2,w3,w4,cli,memory,scale] [--json FILE]

Runs the release binaries (built first with `swift build -c release --static-swift-stdlib` unless
TASKQ_BIN_DIR is set) and prints one table of figures, each next to what it is
compared with in the same run:

  W1     enqueue 20,000 tasks with `enqueue --lines`, one commit per task and (W1b) per
         100, beside the harness's C limit program (../shared/bench/limit/limit.c,
         or $BENCH_DIR; needs cc and libsqlite3-dev) run alternately
  W2     drain N queued no-op tasks (Swift handler) with 2 and 4 workers
  W3     1,000 tasks enqueued 2 ms apart into 2 idle workers: enqueue-to-start p50/p99
  W4     2,000 shell tasks (`true`) through `supervise --handler` with 2 workers,
         vs `xargs -P 2` running `sh -c true`, vs task-spooler (`tsp`) with 2 slots
  CLI    `taskq enqueue` as a new process, one task, median wall time, vs
         `sqlite3 FILE "INSERT ..."` on the same database
  scale  W2 on a table that already holds 1,000,000 finished tasks (100,000 queued)
         vs the same drain on a fresh table; then enqueue and drain 1,000,000
         tasks, throughput per slice (flat = max/min close to 1)
  memory RSS of an idle worker and supervisor, the peak of one worker draining 200,000
         tasks alone, and of workers after 1,000,000 tasks

The same W1-W3 beside the peers (huey, persist-queue, litequeue, multiprocessing.Queue)
come from ../shared/bench (see docs/performance.md for the command).
Figures vary with the machine's load: compare ratios from one run.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binaries():
    d = os.environ.get("TASKQ_BIN_DIR")
    if d:
        return d
    subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "taskq"], cwd=ROOT, check=True,
                   stdout=sys.stderr)
    subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "taskq-example-worker"], cwd=ROOT, check=True,
                   stdout=sys.stderr)
    return os.path.join(ROOT, ".build", "release")


BIN = None
ROWS = []


def row(name, value, unit, compared="", note=""):
    ROWS.append({"row": name, "value": value, "unit": unit, "compared": compared, "note": note})
    print(f"  {name:44s} {value:>12,.2f} {unit:8s} {compared} {note}", flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, capture_output=True, text=True, **kw)


def sqlite(db, sql):
    return sh(["sqlite3", "-cmd", ".timeout 10000", db, sql]).stdout.strip()


def payloads(n, start=0):
    pad = "x" * 50
    return "".join('{"seq":%d,"enq_ns":%d,"pad":"%s"}\n' % (i, time.time_ns(), pad) for i in range(start, start + n))


def enqueue_lines(db, n, commit_every=100, start=0):
    t = time.perf_counter()
    subprocess.run([f"{BIN}/taskq", "enqueue", "bench-noop", "--lines", "--commit-every", str(commit_every),
                    "--quiet", "--db", db], input=payloads(n, start), text=True, check=True)
    return time.perf_counter() - t


def drain(db, workers):
    r = sh([f"{BIN}/taskq-example-worker", "--db", db, "--workers", str(workers), "--until-empty", "--report"])
    return json.loads(r.stdout.strip().splitlines()[-1])["elapsed_s"]


def limit_program(tmp):
    """The harness's C limit program (../shared/bench/limit/limit.c, or $BENCH_DIR),
    compiled against the system's SQLite, or None when it or a compiler is missing."""
    src = os.path.join(os.environ.get("BENCH_DIR", os.path.join(ROOT, "..", "shared", "bench")), "limit", "limit.c")
    exe = os.path.join(tmp, "limit")
    if not os.path.exists(src) or subprocess.run(["cc", "-O2", "-o", exe, src, "-lsqlite3"],
                                                 capture_output=True).returncode != 0:
        return None
    return exe


def limit_rate(exe, tmp, case, n):
    d = os.path.join(tmp, "limit-" + case)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    out = sh([exe, "--dir", d, "--n", str(n), "--max-seconds", "4", "--only", case]).stdout
    return next(float(l.split()[4]) for l in out.splitlines() if len(l.split()) > 4 and l.split()[1] == case)


def w1(tmp, n):
    """W1 and W1b as the harness runs them: `enqueue --lines` into a database made
    before the timing, one commit per line and per 100 lines; beside the limit
    program's single-row and 100-row inserts, run alternately, medians of 3."""
    print(f"W1: enqueue {n} tasks, one durable commit per task, and in batches of 100")
    exe = limit_program(tmp)
    lines = payloads(n)
    for batch, case, name in ((1, "insert1.normal", "W1"), (100, "insert100.normal", "W1b")):
        ours, theirs = [], []
        for rep in range(3):
            db = os.path.join(tmp, f"w1-{batch}-{rep}.db")
            sh([f"{BIN}/taskq", "init", "--db", db])
            r = subprocess.run([f"{BIN}/taskq", "enqueue", "bench-noop", "--lines", "--commit-every", str(batch),
                                "--quiet", "--report", "--db", db], input=lines, text=True, capture_output=True, check=True)
            ours.append(n / json.loads(r.stdout.strip().splitlines()[-1])["elapsed_s"])
            if exe:
                theirs.append(limit_rate(exe, tmp, case, n))
        a = statistics.median(ours)
        if theirs:
            b = statistics.median(theirs)
            row(f"{name} limit program, {case}", b, "rows/s")
            row(f"{name} taskq enqueue --lines", a, "tasks/s", f"{a / b:.0%} of the limit",
                "goal >= 85%" if batch == 1 else "goal >= 70%")
        else:
            row(f"{name} taskq enqueue --lines", a, "tasks/s", "(no limit program: BENCH_DIR or cc missing)")


def w3(tmp, n, gap_ms=2.0):
    """W3: n tasks enqueued one commit at a time, gap_ms apart, into 2 idle
    workers; enqueue-to-start latency from the bench handler's audit lines."""
    print(f"W3: {n} tasks enqueued {gap_ms:g} ms apart into 2 idle workers")
    db = os.path.join(tmp, "w3.db")
    audit = os.path.join(tmp, "w3-audit")
    sh([f"{BIN}/taskq", "init", "--db", db])
    proc = subprocess.Popen([f"{BIN}/taskq-example-worker", "--db", db, "--workers", "2"],
                            env=dict(os.environ, BENCH_AUDIT_DIR=audit),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(children(proc.pid)) == 2, 10)
        time.sleep(1.5)   # warm-up: the workers go idle
        producer = subprocess.Popen([f"{BIN}/taskq", "enqueue", "bench-noop", "--lines", "--quiet", "--db", db],
                                    stdin=subprocess.PIPE, text=True)
        next_at = time.perf_counter()
        for i in range(n):
            # Sleep most of the gap, spin the last 0.3 ms: a 2 ms spin would keep
            # one of the machine's cores busy while the workers are measured.
            time.sleep(max(0.0, next_at - time.perf_counter() - 0.0003))
            while time.perf_counter() < next_at:
                pass
            producer.stdin.write('{"seq":%d,"enq_ns":%d}\n' % (i, time.time_ns()))
            producer.stdin.flush()
            next_at += gap_ms / 1000
        producer.stdin.close()
        producer.wait(timeout=60)
        wait_for(lambda: sqlite(db, "SELECT count(*) FROM tasks WHERE state='succeeded'") == str(n), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lags = sorted((int(f[2]) - int(f[1])) / 1e6 for name in os.listdir(audit)
                  for f in (l.split("\t") for l in open(os.path.join(audit, name))))
    row("W3 enqueue-to-start p50", lags[len(lags) // 2], "ms", "", "goal <= 1")
    row("W3 enqueue-to-start p99", lags[int(len(lags) * 0.99)], "ms", "", f"goal <= 5; {len(lags)} of {n} started")


def w2(tmp, n):
    print(f"W2: drain {n} queued no-op tasks")
    base = os.path.join(tmp, "w2-base.db")
    enqueue_lines(base, n, 1000)
    for w in (2, 4):
        db = os.path.join(tmp, f"w2-{w}.db")
        shutil.copy(base, db)
        secs = drain(db, w)
        done = int(sqlite(db, "SELECT count(*) FROM tasks WHERE state='succeeded'"))
        row(f"W2 drain, {w} workers", n / secs, "tasks/s", note=f"{done}/{n} succeeded")


def w4(tmp, n):
    print(f"W4: {n} shell tasks (`true`) with 2 workers")
    db = os.path.join(tmp, "w4.db")
    lines = "".join('{"kind":"t","payload":%d}\n' % i for i in range(n))
    t0 = time.perf_counter()
    subprocess.run([f"{BIN}/taskq", "enqueue", "--batch", "--quiet", "--db", db], input=lines, text=True, check=True)
    t1 = time.perf_counter()
    sh([f"{BIN}/taskq", "supervise", "--db", db, "--workers", "2", "--handler", "t=true", "--until-empty"])
    t2 = time.perf_counter()
    done = int(sqlite(db, "SELECT count(*) FROM tasks WHERE state='succeeded'"))
    t3 = time.perf_counter()
    subprocess.run(f"seq {n} | xargs -P 2 -n 1 sh -c true", shell=True, check=True)
    xargs = time.perf_counter() - t3
    row("W4 xargs -P 2 (sh -c true)", xargs, "s")
    row("W4 taskq enqueue --batch + supervise", t2 - t0, "s", f"{(t2 - t0) / xargs:.2f}x xargs",
        f"drain alone {t2 - t1:.2f}s; {done}/{n} succeeded")
    if shutil.which("tsp"):
        env = dict(os.environ, TS_SOCKET=os.path.join(tmp, "tsp.sock"), TS_MAXFINISHED=str(n + 10),
                   TS_SAVELIST="", TMPDIR=tmp)
        subprocess.run(["tsp", "-S", "2"], env=env, check=True, capture_output=True)
        t4 = time.perf_counter()
        for _ in range(n):
            subprocess.run(["tsp", "sh", "-c", "true"], env=env, check=True, capture_output=True)
        subprocess.run(["tsp", "-w"], env=env, capture_output=True)
        tsp = time.perf_counter() - t4
        subprocess.run(["tsp", "-K"], env=env, capture_output=True)
        row("W4 task-spooler, 2 slots (tsp per task)", tsp, "s", f"taskq is {tsp / (t2 - t0):.2f}x faster")
    else:
        print("  (tsp not installed: apt-get install task-spooler)")


def cli(tmp, reps):
    print(f"CLI: one enqueue as a new process, median of {reps}")
    db = os.path.join(tmp, "cli.db")
    subprocess.run([f"{BIN}/taskq", "init", "--db", db], check=True, capture_output=True)
    ins = ("INSERT INTO tasks (kind, payload, run_at, created_at) VALUES "
           "('k', '{}', strftime('%Y-%m-%dT%H:%M:%fZ','now'), strftime('%Y-%m-%dT%H:%M:%fZ','now'))")
    tq, sq = [], []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([f"{BIN}/taskq", "enqueue", "k", "{}", "--db", db], check=True, capture_output=True)
        tq.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(["sqlite3", db, ins], check=True, capture_output=True)
        sq.append(time.perf_counter() - t)
    a, b = statistics.median(tq) * 1000, statistics.median(sq) * 1000
    row("CLI sqlite3 INSERT (new process)", b, "ms")
    row("CLI taskq enqueue (new process)", a, "ms", f"{a / b:.2f}x sqlite3")


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(p))
            except OSError:
                pass
    return out


def wait_for(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def scale(tmp, finished, queued, big):
    print(f"scale: W2 with {finished:,} finished + {queued:,} queued vs a fresh table; then {big:,} through")
    fresh = os.path.join(tmp, "fresh.db")
    enqueue_lines(fresh, queued, 1000)
    full = os.path.join(tmp, "full.db")
    subprocess.run([f"{BIN}/taskq", "init", "--db", full], check=True, capture_output=True)
    sqlite(full, f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {finished})
        INSERT INTO tasks (kind, payload, run_at, created_at, state, attempts, started_at, finished_at, result)
        SELECT 'bench-noop', '{{"seq":-1}}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'succeeded', 1,
               '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', '9' FROM n""")
    enqueue_lines(full, queued, 1000)
    a = queued / drain(fresh, 2)
    b = queued / drain(full, 2)
    row("scale W2 fresh table, 2 workers", a, "tasks/s")
    row(f"scale W2 with {finished:,} finished, 2 workers", b, "tasks/s", f"{b / a:.0%} of fresh")

    db = os.path.join(tmp, "big.db")
    slices, per = 10, big // 10
    rates = []
    for s in range(slices):
        secs = enqueue_lines(db, per, 100, s * per)
        rates.append(per / secs)
    row(f"scale enqueue {big:,} (batches of 100), min slice", min(rates), "tasks/s",
        f"max/min {max(rates) / min(rates):.2f}", "slices: " + " ".join(f"{r:,.0f}" for r in rates))
    proc = subprocess.Popen([f"{BIN}/taskq-example-worker", "--db", db, "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    samples, last, t_last = [], 0, time.perf_counter()
    peak = {}
    while last < big:
        time.sleep(1.0)
        done = int(sqlite(db, "SELECT count(*) FROM tasks WHERE state='succeeded'"))
        now = time.perf_counter()
        if done > last and done < big:
            samples.append((done - last) / (now - t_last))
        last, t_last = done, now
        for p in [proc.pid] + children(proc.pid):
            peak[p] = max(peak.get(p, 0), rss_kb(p))
    ws = [rss_kb(p) for p in children(proc.pid)]
    sup = rss_kb(proc.pid)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    if samples:
        row(f"scale drain {big:,}, 2 workers, median second", statistics.median(samples), "tasks/s",
            f"max/min {max(samples) / max(1, min(samples)):.2f} over {len(samples)} s")
    row(f"memory after {big:,}: worker RSS (max)", max(ws or [0]) / 1024, "MiB", "goal <= 15")
    row(f"memory after {big:,}: supervisor RSS", sup / 1024, "MiB", "goal <= 20")


def memory_idle(tmp):
    print("memory: idle supervisor and workers")
    db = os.path.join(tmp, "idle.db")
    proc = subprocess.Popen([f"{BIN}/taskq", "supervise", "--db", db, "--workers", "2", "--handler", "t=true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: len(children(proc.pid)) == 2, 10)
    time.sleep(2)
    ws = children(proc.pid)
    cpu0 = {p: sum(int(x) for x in open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[11:13]) for p in ws}
    time.sleep(5)
    cpu1 = {p: sum(int(x) for x in open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[11:13]) for p in ws}
    hz = os.sysconf("SC_CLK_TCK")
    row("memory idle worker RSS (max)", max(rss_kb(p) for p in ws) / 1024, "MiB", "goal <= 15")
    row("memory idle supervisor RSS", rss_kb(proc.pid) / 1024, "MiB", "goal <= 20")
    row("idle worker CPU (max over 5 s)", max((cpu1[p] - cpu0[p]) / hz / 5 * 100 for p in ws), "% core", "goal < 1")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def memory_one_worker(tmp, n):
    """Peak RSS of the one worker of `--workers 1` draining n tasks: with no other
    process committing, nothing empties its page cache, so it holds what it read."""
    db = os.path.join(tmp, "one.db")
    for start in range(0, n, 100_000):
        enqueue_lines(db, min(100_000, n - start), 1000, start)
    # A fresh Python process whose only child is the supervisor: its children's
    # peak RSS is the largest of the supervisor and the worker it waited for.
    peak = subprocess.run([sys.executable, "-c", "import resource, subprocess, sys; subprocess.run(sys.argv[1:], "
                           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); "
                           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
                           f"{BIN}/taskq-example-worker", "--db", db, "--workers", "1", "--until-empty"],
                          capture_output=True, text=True, check=True).stdout.strip()
    row(f"memory draining {n:,} with 1 worker: peak RSS", int(peak) / 1024, "MiB", "goal <= 15")


def main():
    global BIN
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a minute or two)")
    ap.add_argument("--only", default="w1,w2,w3,w4,cli,memory,scale")
    ap.add_argument("--json", help="also write the rows as JSON here")
    a = ap.parse_args()
    BIN = binaries()
    only = set(a.only.split(","))
    tmp = tempfile.mkdtemp(prefix="taskq-bench-")
    try:
        print(f"taskq benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        if "w1" in only: w1(tmp, 20000)
        if "w2" in only: w2(tmp, 20000)
        if "w3" in only: w3(tmp, 200 if a.quick else 1000)
        if "w4" in only: w4(tmp, 500 if a.quick else 2000)
        if "cli" in only: cli(tmp, 30 if a.quick else 200)
        if "memory" in only:
            memory_idle(tmp)
            memory_one_worker(tmp, 50_000 if a.quick else 200_000)
        if "scale" in only:
            if a.quick: scale(tmp, 100_000, 20_000, 100_000)
            else: scale(tmp, 1_000_000, 100_000, 1_000_000)
        print(f"load at the end {os.getloadavg()[0]:.2f}")
        if a.json:
            json.dump(ROWS, open(a.json, "w"), indent=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
