import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Storage faults: the database on a full disk; files that are not usable
/// databases (not SQLite, truncated, from a newer taskq, read-only, in a directory
/// that does not exist).
@Suite struct StorageFaultTests {
    init() {
        // A child that stops reading its stdin early must not kill the test runner.
        signal(SIGPIPE, SIG_IGN)
    }

    // MARK: - disk full (scenario 5)

    /// The database on a 600 KiB tmpfs that is then filled up. Enqueue fails at once
    /// with a one-line error naming the lack of space and exit 1 (or 69); nothing is
    /// half-written; once space is freed the same command works. Run on an idle
    /// database (no -shm file yet: the first thing SQLite must allocate is the
    /// shared-memory index) and with a supervisor holding connections open (the -shm
    /// exists; the WAL append is what fails).
    @Test(.enabled(if: canMountTmpfs, "needs root with CAP_SYS_ADMIN to mount a size-limited tmpfs; skipped"),
          arguments: [false, true])
    func enqueueOnAFullDiskFailsCleanly(supervisorRunning: Bool) throws {
        let s = Scenario("taskq-storage")
        defer { s.close() }
        let fs = try #require(TinyFS(in: s.dir, size: "600k"))
        defer { fs.unmount() }
        let db = fs.path + "/taskq.db"
        for i in 1...3 {
            let r = s.taskq(["enqueue", "t", String(i), "--db", db])
            try #require(r.status == 0, "\(r)")
        }
        var sup: Child?
        if supervisorRunning {
            let c = s.supervise(["--db", db, "--workers", "1", "--handler", "other=true"])
            sup = c
            #expect(eventually { sqlite(db, "SELECT count(*) FROM processes") == "2" }, "\(c.stderrSoFar)")
            #expect(access(db + "-shm", F_OK) == 0)
        }
        fs.fill()
        #expect(fs.availableBytes == 0)

        let payload = "\"" + String(repeating: "x", count: 3000) + "\""
        let batch = (1...20).map { "{\"kind\":\"t\",\"payload\":\($0)}" }.joined(separator: "\n")
        var messages: [String] = []
        let attempts: [([String], String?)] = [(["enqueue", "t", payload], nil), (["enqueue", "t", payload], nil),
                                               (["enqueue", "t", "--lines"], "5\n6\n"), (["enqueue", "--batch"], batch),
                                               (["enqueue", "t", payload], nil)]
        for (args, stdin) in attempts {
            let r = s.taskq(args + ["--db", db], stdin: stdin, timeout: 30)
            #expect(r.status == 1 || r.status == 69, "\(args.prefix(3)): \(r)")
            #expect(r.stdout.isEmpty, "\(r)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "one line: \(r.stderr)")
            let first = lines.first.map(String.init) ?? ""
            #expect(first.hasPrefix("taskq: "), "\(r)")
            for m in crashMarkers { #expect(!r.stderr.contains(m), "\(r.stderr)") }
            messages.append(first)
        }
        for m in messages { #expect(m.lowercased().contains("no space"), "\(m)") }
        if let c = sup {
            #expect(!c.exited, "the supervisor survived the full disk: \(c.stderrSoFar)")
        }

        // Nothing half-written: after freeing space the database holds exactly the
        // three tasks, passes integrity_check, and takes new tasks again.
        fs.free()
        #expect(sqlite(db, "PRAGMA integrity_check; SELECT count(*) FROM tasks WHERE kind = 't'; SELECT group_concat(payload) FROM tasks")
                    == "ok\n3\n1,2,3")
        let again = s.taskq(["enqueue", "t", "4", "--db", db])
        #expect(again.status == 0, "\(again)")
        #expect(sqlite(db, "SELECT count(*) FROM tasks WHERE kind = 't'") == "4")
        if let c = sup {
            let stop = s.taskq(["stop", "--wait", "--timeout", "30", "--db", db])
            #expect(stop.status == 0, "\(stop)")
            #expect(c.wait(timeout: 30) == 0, "\(c.stderrSoFar)")
        }
    }

    /// A worker whose handler finished while the disk is full cannot store the result.
    /// It keeps the task claimed and retries, without dying or being replaced; once
    /// space is freed the result (300 KB) is stored and the task succeeds at its first
    /// attempt, having run once.
    @Test(.enabled(if: canMountTmpfs, "needs root with CAP_SYS_ADMIN to mount a size-limited tmpfs; skipped"))
    func workerThatCannotStoreAResultKeepsTheTaskUntilSpaceIsFreed() throws {
        let s = Scenario("taskq-storage")
        defer { s.close() }
        let fs = try #require(TinyFS(in: s.dir, size: "1m"))
        defer { fs.unmount() }
        let db = fs.path + "/taskq.db"
        let audit = s.dir + "/audit", go = s.dir + "/go"
        s.script("h.sh", """
            cat > /dev/null
            while [ ! -e \(go) ]; do sleep 0.02; done
            echo "$TASKQ_TASK_ID $TASKQ_ATTEMPT" >> \(audit)
            head -c 300000 /dev/zero | tr '\\000' x
            """)
        let id = s.taskq(["enqueue", "t", "--db", db, "null"]).out
        let sup = s.supervise(["--db", db, "--workers", "1", "--handler", "t=./h.sh"])
        #expect(eventually { sqlite(db, "SELECT state FROM tasks WHERE id = \(id)") == "running" }, "\(sup.stderrSoFar)")
        let worker = workers(of: sup, s, db: db)
        #expect(worker.count == 1)
        let owner = sqlite(db, "SELECT owner FROM tasks WHERE id = \(id)")

        fs.fill()
        #expect(fs.availableBytes == 0)
        writeFile(go, "")
        // It meets the full disk, says so once, and keeps trying quietly (backing
        // off to every 5 s) instead of flooding its log.
        let noSpace = { sup.stderrSoFar.split(separator: "\n").filter { $0.contains("no space left on device") }.count }
        #expect(eventually(timeout: 15) {
            sup.stderrSoFar.contains("taskq worker \(worker.first ?? 0): no space left on device")
        }, "\(sup.stderrSoFar)")
        let firstLines = noSpace()
        usleep(3_000_000)  // an observation window: what matters is how little is logged in it
        #expect(noSpace() - firstLines <= 2, "the log is flooded: \(sup.stderrSoFar.suffix(2000))")
        // Still its task, same worker, same supervisor, nothing replaced or recovered.
        #expect(access(audit, F_OK) == 0)
        #expect(sqlite(db, "SELECT state || ':' || attempts || ':' || owner FROM tasks WHERE id = \(id)") == "running:1:\(owner)")
        #expect(workers(of: sup, s, db: db) == worker)
        #expect(!sup.exited)
        #expect(!sup.stderrSoFar.contains("replacement") && !sup.stderrSoFar.contains("recovered"), "\(sup.stderrSoFar)")

        fs.free()
        #expect(eventually(timeout: 20) { sqlite(db, "SELECT state FROM tasks WHERE id = \(id)") == "succeeded" }, "\(sup.stderrSoFar)")
        #expect(sqlite(db, "SELECT attempts || ':' || length(result) || ':' || replace(result, 'x', '') FROM tasks WHERE id = \(id)")
                    == "1:300000:")
        #expect(String(decoding: readAll(audit), as: UTF8.self) == "\(id) 1\n", "the handler ran once")
        #expect(sqlite(db, "PRAGMA integrity_check") == "ok")
        #expect(workers(of: sup, s, db: db) == worker)
        let stop = s.taskq(["stop", "--wait", "--timeout", "30", "--db", db])
        #expect(stop.status == 0, "\(stop)")
        #expect(sup.wait(timeout: 30) == 0, "\(sup.stderrSoFar)")
    }

    // MARK: - unusable files (scenario 6)

    /// Every command against a file that cannot be a taskq database: a one-line error
    /// that names the problem, the documented exit status, nothing on stdout, the
    /// file byte for byte as it was and no file created next to it.
    @Test(arguments: UnusableFile.allCases)
    func unusableDatabaseFile(_ kind: UnusableFile) throws {
        let s = Scenario("taskq-storage")
        defer { s.close() }
        let path = try kind.prepare(s)
        let dir = String(path[..<path.lastIndex(of: "/")!])
        let before = readAll(path), listing = listDirectory(s.dir), inner = listDirectory(dir)
        for c in allCommands {
            let r = run(Harness.taskq, c.args + ["--db", path], stdin: c.stdin.map { Array($0.utf8) }, cwd: s.dir, timeout: 30)
            let (code, words) = kind.expected(writes: c.writes)
            let what = "\(kind) / taskq \(c.args.joined(separator: " "))"
            #expect(r.status == code, "\(what): \(r)")
            #expect(r.stdout.isEmpty, "\(what): \(r)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(what): one line on stderr: \(r.stderr)")
            let first = lines.first.map { String($0).lowercased() } ?? ""
            #expect(first.hasPrefix("taskq: "), "\(what): \(r)")
            for w in words { #expect(first.contains(w), "\(what): lacks \"\(w)\": \(first)") }
            for m in crashMarkers { #expect(!r.stderr.contains(m), "\(what): \(r.stderr)") }
            #expect(checksum(readAll(path)) == checksum(before) && readAll(path).count == before.count, "\(what): the file changed")
            #expect(listDirectory(s.dir) == listing && listDirectory(dir) == inner, "\(what): files appeared: \(listDirectory(s.dir)) \(listDirectory(dir))")
        }
    }

    /// A database file its user may not write (chmod 0444; the directory writable).
    /// Commands that write fail with one line naming the permission problem (69);
    /// commands that only read still work; the file never changes. Run as an
    /// unprivileged user: root ignores file permissions.
    @Test(.enabled(if: unprivileged != nil, "root without setpriv/nobody: permissions would not apply; skipped"))
    func readOnlyDatabaseFile() throws {
        let s = Scenario("taskq-storage")
        defer { s.close() }
        let dir = s.dir + "/q", db = dir + "/queue.db"
        mkdir(dir, 0o755)
        try #require(s.taskq(["enqueue", "--batch", "--db", db], stdin: threeTasks).status == 0)
        giveToUnprivileged(s.dir, dir, db)
        chmod(db, 0o444)
        let before = readAll(db), listing = listDirectory(dir)

        for c in allCommands where c.writes {
            let r = asUnprivileged(c.args + ["--db", db], stdin: c.stdin, cwd: s.dir)
            let what = "taskq \(c.args.joined(separator: " "))"
            #expect(r.status == 69, "\(what): \(r)")
            #expect(r.stdout.isEmpty, "\(what): \(r)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(what): \(r.stderr)")
            let first = lines.first.map { String($0).lowercased() } ?? ""
            #expect(first.hasPrefix("taskq: ") && (first.contains("permission denied") || first.contains("read-only")), "\(what): \(first)")
            #expect(!first.contains("cannot create"), "\(what): \(first)")
            #expect(readAll(db) == before, "\(what): the file changed")
            #expect(listDirectory(dir) == listing, "\(what): files appeared: \(listDirectory(dir))")
        }
        // Reading a queue one may not write is fine.
        for (args, code) in [(["status"], Int32(0)), (["list"], 0), (["show", "1"], 0), (["result", "1"], 75)] {
            let r = asUnprivileged(args + ["--db", db], cwd: s.dir)
            #expect(r.status == code, "taskq \(args.joined(separator: " ")): \(r)")
            #expect(readAll(db) == before)
        }
        // Reading left no -wal or -shm behind (a -shm with the file's mode 0444 would
        // break every write later), and once its owner makes it writable again, it
        // is an ordinary queue.
        #expect(listDirectory(dir) == listing, "files left behind: \(listDirectory(dir))")
        chmod(db, 0o600)
        let r = asUnprivileged(["enqueue", "t", "4", "--db", db], cwd: s.dir)
        #expect(r.status == 0, "\(r)")
        #expect(sqlite(db, "SELECT count(*) FROM tasks") == "4")
    }

    /// A writable database in a directory its user may not write (chmod 0555): WAL
    /// needs the -wal and -shm files beside it, so every command fails with one line
    /// that says the database is read-only here (69), and nothing changes.
    @Test(.enabled(if: unprivileged != nil, "root without setpriv/nobody: permissions would not apply; skipped"))
    func databaseInAReadOnlyDirectory() throws {
        let s = Scenario("taskq-storage")
        defer { s.close() }
        let dir = s.dir + "/q", db = dir + "/queue.db"
        mkdir(dir, 0o755)
        try #require(s.taskq(["enqueue", "--batch", "--db", db], stdin: threeTasks).status == 0)
        giveToUnprivileged(s.dir, dir, db)
        chmod(db, 0o644)
        chmod(dir, 0o555)
        defer { chmod(dir, 0o755) }
        let before = readAll(db), listing = listDirectory(dir)
        for c in allCommands {
            let r = asUnprivileged(c.args + ["--db", db], stdin: c.stdin, cwd: s.dir)
            let what = "taskq \(c.args.joined(separator: " "))"
            #expect(r.status == 69, "\(what): \(r)")
            #expect(r.stdout.isEmpty, "\(what): \(r)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(what): \(r.stderr)")
            let first = lines.first.map { String($0).lowercased() } ?? ""
            #expect(first.hasPrefix("taskq: ") && first.contains("read-only"), "\(what): \(first)")
            #expect(first.contains("permissions"), "\(what): says what to check: \(first)")
            #expect(readAll(db) == before, "\(what): the file changed")
            #expect(listDirectory(dir) == listing, "\(what): files appeared: \(listDirectory(dir))")
        }
    }
}

// MARK: - the commands, and the files they are run against

private struct Command {
    var args: [String]
    var stdin: String? = nil
    /// Whether it would write (so creates a missing database).
    var writes: Bool
}

private let threeTasks = """
    {"kind":"t","payload":1}
    {"kind":"t","payload":2}
    {"kind":"t","payload":3}
    """

/// Every command a user could point at a bad file.
private let allCommands: [Command] = [
    Command(args: ["init"], writes: true),
    Command(args: ["enqueue", "t", "1"], writes: true),
    Command(args: ["enqueue", "--batch"], stdin: threeTasks, writes: true),
    Command(args: ["enqueue", "t", "--lines"], stdin: "1\n2\n", writes: true),
    Command(args: ["supervise", "--workers", "1", "--handler", "t=cat", "--until-empty"], writes: true),
    Command(args: ["status"], writes: false),
    Command(args: ["status", "--json"], writes: false),
    Command(args: ["list"], writes: false),
    Command(args: ["show", "1"], writes: false),
    Command(args: ["result", "1"], writes: false),
    Command(args: ["result", "1", "--wait", "--timeout", "1"], writes: false),
    Command(args: ["stop"], writes: false),
]

enum UnusableFile: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case notSQLite, truncated, newerSchema, missingDirectory

    var testDescription: String { rawValue }

    /// Creates the file; returns its path.
    fileprivate func prepare(_ s: Scenario) throws -> String {
        let path = s.dir + "/queue.db"
        switch self {
        case .notSQLite:
            writeFile(path, String(repeating: "These are my notes, not a database.\n", count: 150))
        case .truncated, .newerSchema:
            let lines = (1...200).map { "{\"kind\":\"t\",\"payload\":{\"i\":\($0)}}" }.joined(separator: "\n")
            let r = s.taskq(["enqueue", "--batch", "--db", path], stdin: lines)
            try #require(r.status == 0, "\(r)")
            try #require(access(path + "-wal", F_OK) != 0, "the last connection removed the WAL")
            if self == .truncated {
                try #require(readAll(path).count > 8192)
                try #require(truncate(path, 3000) == 0)
            } else {
                _ = sqlite(path, "PRAGMA user_version = 99")
                try #require(access(path + "-wal", F_OK) != 0)
            }
        case .missingDirectory:
            return s.dir + "/no-such-dir/queue.db"
        }
        return path
    }

    /// Exit status and words of the first stderr line (lowercase).
    func expected(writes: Bool) -> (Int32, [String]) {
        switch self {
        case .notSQLite: return (65, ["not a taskq database", "not a sqlite database"])
        case .truncated: return (65, ["corrupt", "backup"])
        case .newerSchema: return (69, ["schema version 99", "newer taskq"])
        case .missingDirectory: return writes ? (66, ["directory does not exist"]) : (66, ["no database"])
        }
    }
}

// MARK: - a tiny file system

/// Root may mount a size-limited tmpfs (CAP_SYS_ADMIN).
private let canMountTmpfs: Bool = {
    guard getuid() == 0 else { return false }
    let dir = Harness.tempDir("taskq-mount-probe")
    defer { Harness.remove(dir) }
    guard run("/bin/sh", ["-c", "mount -t tmpfs -o size=64k tmpfs \"$0\"", dir], timeout: 10).status == 0 else { return false }
    run("/bin/sh", ["-c", "umount \"$0\"", dir], timeout: 10)
    return true
}()

/// A size-limited tmpfs at DIR/mnt, unmounted by `unmount()`.
private final class TinyFS {
    let path: String
    private var mounted = false

    init?(in dir: String, size: String) {
        path = dir + "/mnt"
        mkdir(path, 0o755)
        mounted = run("/bin/sh", ["-c", "mount -t tmpfs -o size=\(size),mode=0755 tmpfs \"$0\"", path], timeout: 10).status == 0
        if !mounted { return nil }
    }

    /// Fills every free block with a filler file.
    func fill() {
        run("/bin/sh", ["-c", "dd if=/dev/zero of=\"$0\"/filler bs=4k 2>/dev/null; dd if=/dev/zero of=\"$0\"/filler2 bs=512 2>/dev/null; true", path])
    }

    /// Deletes the filler.
    func free() {
        unlink(path + "/filler")
        unlink(path + "/filler2")
    }

    var availableBytes: UInt64 {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return .max }
        return UInt64(st.f_bavail) * UInt64(st.f_bsize)
    }

    func unmount() {
        if mounted { run("/bin/sh", ["-c", "umount -l \"$0\"", path], timeout: 10); mounted = false }
    }

    deinit { unmount() }
}

// MARK: - another user

/// The command prefix that runs a program as `nobody` when this is root (root
/// ignores file permissions); empty for an ordinary user; nil when neither works.
private let unprivileged: [String]? = {
    if getuid() != 0 { return [] }
    let prefix = ["/usr/bin/setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
    guard access(prefix[0], X_OK) == 0 else { return nil }
    return run(prefix[0], Array(prefix.dropFirst()) + [Harness.taskq, "--version"], timeout: 10).status == 0 ? prefix : nil
}()

private func asUnprivileged(_ args: [String], stdin: String? = nil, cwd: String) -> RunResult {
    let prefix = unprivileged ?? []
    let argv = prefix + [Harness.taskq] + args
    return run(argv[0], Array(argv.dropFirst()), stdin: stdin.map { Array($0.utf8) }, cwd: cwd, timeout: 30)
}

/// As root: hands the scenario's files to nobody, and lets nobody into the scenario directory.
private func giveToUnprivileged(_ scenarioDir: String, _ paths: String...) {
    guard getuid() == 0 else { return }
    chmod(scenarioDir, 0o755)
    run("/bin/chown", ["-R", "nobody:nogroup"] + paths)
}

// MARK: - helpers

/// FNV-1a, 64 bits.
private func checksum(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// The worker processes of `supervisor` on `db`.
private func workers(of supervisor: Child, _ s: Scenario, db: String) -> [Int32] {
    pidsMatching("__taskq-worker {\"database\":\"\(db)\"").filter { pid in
        let stat = String(decoding: readAll("/proc/\(pid)/stat"), as: UTF8.self)
        guard let close = stat.lastIndex(of: ")") else { return false }
        let f = stat[stat.index(after: close)...].split(separator: " ")
        return f.count > 3 && Int32(f[3]) == pid && Int32(f[1]) == supervisor.pid
    }.sorted()
}
