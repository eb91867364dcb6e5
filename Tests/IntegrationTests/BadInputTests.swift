import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// One bad input: what the user types, what they feed on stdin, and what taskq
/// must answer. After every row the database must be exactly as before (and no
/// file may have appeared or changed in the directory).
struct BadInput: Sendable, CustomStringConvertible, CustomTestStringConvertible {
    var name: String
    var args: [String]
    var stdin: [UInt8]?
    /// The expected exit status.
    var code: Int32
    /// Words the first stderr line must contain (case-insensitive).
    var words: [String]
    /// Whether the directory holds a populated ./taskq.db before the row runs.
    var fixture: Bool = true
    /// Files to create in the directory first (name → content).
    var files: [String: [UInt8]] = [:]
    var env: [String: String] = [:]

    var description: String { "\(name): taskq \(args.joined(separator: " "))" }
    var testDescription: String { description }
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Two good --batch lines; a third line appended to them is the bad one.
private let twoGoodLines = "{\"kind\":\"b\",\"payload\":1}\n{\"kind\":\"b\",\"payload\":2}\n"
private func batchLine3(_ bad: String) -> [UInt8] { bytes(twoGoodLines + bad + "\n") }
private let overLimit = "\"" + String(repeating: "a", count: Queue.maxPayloadBytes) + "\""   // 1 MiB + 2 bytes
private let sqlName = "x'; DROP TABLE tasks; --"
private let notADatabase = bytes("hello, this is not a database\n")

private func row(_ name: String, _ args: [String], stdin: [UInt8]? = nil, _ code: Int32, _ words: [String],
                 fixture: Bool = true, files: [String: [UInt8]] = [:], env: [String: String] = [:]) -> BadInput {
    BadInput(name: name, args: args, stdin: stdin, code: code, words: words, fixture: fixture, files: files, env: env)
}

/// The table. Exit codes: 1 failed, 64 usage, 65 bad data, 66 no such database/task.
let badInputs: [BadInput] = [
    // Command line as a whole.
    row("unknown subcommand", ["frobnicate"], 64, ["unknown command 'frobnicate'"]),
    row("unknown flag", ["enqueue", "--bogus", "t", "1"], 64, ["unknown option", "--bogus"]),
    row("unknown flag on status", ["status", "--verbose"], 64, ["unknown option", "--verbose"]),
    row("enqueue without KIND", ["enqueue"], 64, ["missing kind"]),
    row("extra arguments", ["enqueue", "t", "1", "2", "3"], 64, ["unexpected arguments"]),

    // Payload on the command line.
    row("invalid JSON", ["enqueue", "t", "{"], 65, ["not valid JSON"]),
    row("truncated JSON object", ["enqueue", "t", "{\"a\":1"], 65, ["not valid JSON", "end of input"]),
    row("trailing comma", ["enqueue", "t", "{\"a\":1,}"], 65, ["not valid JSON"]),
    row("single quotes", ["enqueue", "t", "{'a':1}"], 65, ["not valid JSON"]),
    row("NaN is not JSON", ["enqueue", "t", "NaN"], 65, ["not valid JSON"]),
    row("two values", ["enqueue", "t", "1 2"], 65, ["not valid JSON"]),
    row("empty payload argument", ["enqueue", "t", ""], 65, ["payload is empty"]),

    // Payload on stdin.
    row("empty stdin with -", ["enqueue", "t", "-"], stdin: [], 65, ["payload on stdin is empty"]),
    row("blank stdin with -", ["enqueue", "t", "-"], stdin: bytes(" \n\t\n"), 65, ["payload on stdin is empty"]),
    row("truncated JSON on stdin", ["enqueue", "t", "-"], stdin: bytes("[1, 2, {\"x\": "), 65, ["not valid JSON"]),
    row("truncated JSON piped", ["enqueue", "t"], stdin: bytes("{\"file\": \"a.p"), 65, ["not valid JSON"]),
    row("binary stdin (PNG header)", ["enqueue", "t", "-"], stdin: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0xFF, 0x00],
        65, ["not valid UTF-8"]),
    row("invalid UTF-8 in a JSON string", ["enqueue", "t"], stdin: [0x22, 0xC3, 0x28, 0x22], 65, ["not valid UTF-8"]),
    row("NUL byte inside a JSON string", ["enqueue", "t", "-"], stdin: [0x22, 0x61, 0x00, 0x62, 0x22], 65, ["not valid JSON"]),
    row("a lone NUL byte", ["enqueue", "t", "-"], stdin: [0x00], 65, ["not valid JSON"]),
    row("payload just over 1 MiB", ["enqueue", "t", "-"], stdin: bytes(overLimit), 65, ["payload", "limit", "1 MiB"]),
    row("endless stdin (3 MiB) stops at the limit", ["enqueue", "t"], stdin: [UInt8](repeating: 0x20, count: 3 << 20) + [0x31],
        65, ["payload on stdin", "limit", "1 MiB"]),
    row("nesting too deep", ["enqueue", "t", "-"], stdin: bytes(String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)),
        65, ["not valid JSON", "nesting"]),

    // Numbers.
    row("--priority without a value", ["enqueue", "t", "1", "--priority"], 64, ["missing value", "--priority"]),
    row("--priority not a number", ["enqueue", "t", "1", "--priority", "high"], 64, ["invalid", "--priority"]),
    row("--priority past Int64", ["enqueue", "t", "1", "--priority", "9223372036854775808"], 64, ["invalid", "--priority"]),
    row("--max-attempts 0", ["enqueue", "t", "1", "--max-attempts", "0"], 64, ["--max-attempts", "between 1 and"]),
    row("--max-attempts negative", ["enqueue", "t", "1", "--max-attempts", "-1"], 64, ["--max-attempts", "-1"]),
    row("--max-attempts huge", ["enqueue", "t", "1", "--max-attempts", "1000001"], 64, ["--max-attempts"]),
    row("--delay negative", ["enqueue", "t", "1", "--delay", "-5"], 64, ["--delay", "negative"]),
    row("--delay bad unit", ["enqueue", "t", "1", "--delay", "5x"], 64, ["--delay", "invalid duration"]),
    row("--delay over 100 years", ["enqueue", "t", "1", "--delay", "99999999d"], 64, ["--delay", "100 years"]),
    row("--delay without a value", ["enqueue", "t", "1", "--delay"], 64, ["missing value", "--delay"]),
    row("--timeout 0", ["enqueue", "t", "1", "--timeout", "0"], 64, ["--timeout"]),
    row("--timeout negative", ["enqueue", "t", "1", "--timeout", "-1"], 64, ["--timeout", "negative"]),
    row("--timeout over a year", ["enqueue", "t", "1", "--timeout", "400d"], 64, ["--timeout", "1 year"]),
    row("--backoff-base negative", ["enqueue", "t", "1", "--backoff-base", "-1"], 64, ["--backoff-base", "negative"]),
    row("--backoff-cap below --backoff-base", ["enqueue", "t", "1", "--backoff-base", "5m", "--backoff-cap", "1m"], 64,
        ["--backoff-cap", "shorter than", "--backoff-base"]),
    row("--backoff-base over a year", ["schedule", "add", "n", "--cron", "@daily", "t", "--backoff-base", "400d"], 64,
        ["--backoff-base", "1 year"]),
    row("map --backoff-cap garbage", ["map", "--handler", "cat", "--backoff-cap", "soon"], stdin: bytes("1\n"), 64,
        ["--backoff-cap", "invalid duration"]),
    row("batch line 3 backoff_base a word", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"backoff_base\":\"x\"}"), 65,
        ["line 3", "backoff_base"]),
    row("kind set with nothing to set", ["kind", "set", "k"], 64, ["nothing to set"]),
    row("kind set --max-attempts 0", ["kind", "set", "k", "--max-attempts", "0"], 64, ["--max-attempts", "between 1 and"]),
    row("kind set --on-crash maybe", ["kind", "set", "k", "--on-crash", "maybe"], 64, ["--on-crash", "retry or fail"]),
    row("kind set --unset a typo", ["kind", "set", "k", "--unset", "backof-cap"], 64, ["--unset backof-cap"]),
    row("kind set a reserved kind", ["kind", "set", "taskq.stop", "--max-attempts", "1"], 64, ["reserved"]),
    row("kind set a cap below the base", ["kind", "set", "k", "--backoff-base", "1h", "--backoff-cap", "1s"], 64, ["shorter than"]),
    row("kind remove without a policy", ["kind", "remove", "k"], 66, ["has no policy"]),
    row("kind remove a bad name", ["kind", "remove", "bad name"], 64, ["invalid kind name"]),
    row("a kind that starts with '-'", ["enqueue", "-", "1"], 64, ["must not start with '-'"]),
    row("--queue followed by an option", ["enqueue", "k", "1", "--queue", "--json"], 64, ["must not start with '-'"]),
    row("--db followed by an option-like name", ["enqueue", "k", "1", "--db", "-x.db"], 64, ["--db"]),
    row("supervise --on-crash twice for a kind", ["supervise", "--handler", "a=cat", "--on-crash", "a=fail", "--on-crash", "a=retry"], 64,
        ["--on-crash", "given twice"]),
    row("supervise --backoff-cap over a year", ["supervise", "--handler", "a=cat", "--backoff-cap", "400d"], 64, ["--backoff-cap", "1 year"]),
    row("--busy-timeout negative", ["status", "--busy-timeout", "-1"], 64, ["--busy-timeout"]),
    row("--busy-timeout infinite", ["status", "--busy-timeout", "1e999"], 64, ["--busy-timeout"]),
    row("--busy-timeout not a number", ["list", "--busy-timeout", "soon"], 64, ["--busy-timeout"]),
    row("--commit-every 0", ["enqueue", "t", "--lines", "--commit-every", "0"], stdin: bytes("1\n"), 64, ["--commit-every"]),
    row("--commit-every huge", ["enqueue", "t", "--lines", "--commit-every", "99999999999999999999"], stdin: bytes("1\n"),
        64, ["--commit-every"]),

    // --at.
    row("--at garbage", ["enqueue", "t", "1", "--at", "tomorrow"], 64, ["--at", "invalid time"]),
    row("--at month 13", ["enqueue", "t", "1", "--at", "2026-13-01T00:00:00Z"], 64, ["--at", "month"]),
    row("--at February 30", ["enqueue", "t", "1", "--at", "2026-02-30"], 64, ["--at", "day 30"]),
    row("--at hour 25", ["enqueue", "t", "1", "--at", "2026-01-01T25:00:00Z"], 64, ["--at", "hour"]),
    row("--at offset +25:00", ["enqueue", "t", "1", "--at", "2026-01-01T10:00:00+25:00"], 64, ["--at", "offset"]),
    row("--at empty", ["enqueue", "t", "1", "--at", ""], 64, ["--at", "empty"]),
    row("--delay and --at together", ["enqueue", "t", "1", "--delay", "5", "--at", "2030-01-01T00:00:00Z"], 64, ["--delay", "--at"]),

    // Names.
    row("kind with SQL", ["enqueue", sqlName, "1"], 64, ["invalid kind name"]),
    row("kind with double quote", ["enqueue", "a\"b", "1"], 64, ["invalid kind name"]),
    row("kind with a space", ["enqueue", "a b", "1"], 64, ["invalid kind name"]),
    row("kind not ASCII", ["enqueue", "résumé", "1"], 64, ["invalid kind name"]),
    row("kind empty", ["enqueue", "", "1"], 64, ["kind name is empty"]),
    row("kind too long", ["enqueue", String(repeating: "k", count: 201), "1"], 64, ["longer than 200"]),
    row("reserved kind taskq.stop", ["enqueue", "taskq.stop", "{}"], 64, ["reserved"]),
    row("queue with SQL", ["enqueue", "t", "1", "--queue", sqlName], 64, ["invalid queue name"]),
    row("queue with a space", ["enqueue", "t", "1", "--queue", "my queue"], 64, ["invalid queue name"]),
    row("queue with quotes", ["enqueue", "t", "1", "--queue", "'q'"], 64, ["invalid queue name"]),
    row("queue empty", ["enqueue", "t", "1", "--queue", ""], 64, ["queue name is empty"]),

    // Options that conflict or are misplaced.
    row("--synchronous bogus", ["enqueue", "t", "1", "--synchronous", "bogus"], 64, ["--synchronous", "bogus"]),
    row("--db empty", ["enqueue", "t", "1", "--db", ""], 64, ["--db is empty"]),
    row("--batch with a PAYLOAD", ["enqueue", "t", "1", "--batch"], 64, ["--batch"]),
    row("--batch and --lines", ["enqueue", "t", "--batch", "--lines"], 64, ["--batch or --lines"]),
    row("--lines without KIND", ["enqueue", "--lines"], stdin: bytes("1\n"), 64, ["--lines needs a KIND"]),
    row("--commit-every without --lines", ["enqueue", "t", "1", "--commit-every", "5"], 64, ["--commit-every"]),

    // --batch: exit 65, the first bad line named, nothing inserted.
    row("batch line 3 invalid JSON", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\""), 65, ["line 3", "not valid JSON"]),
    row("batch line 3 not an object", ["enqueue", "--batch"], stdin: batchLine3("[1,2]"), 65, ["line 3", "object"]),
    row("batch line 3 without kind", ["enqueue", "--batch"], stdin: batchLine3("{\"payload\":3}"), 65, ["line 3", "kind"]),
    row("batch line 3 unknown field", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"prio\":1}"), 65,
        ["line 3", "unknown field", "prio"]),
    row("batch line 3 reserved kind", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"taskq.stop\"}"), 65, ["line 3", "reserved"]),
    row("batch line 3 kind with SQL", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"x'; DROP TABLE tasks; --\"}"), 65,
        ["line 3", "invalid kind name"]),
    row("batch line 3 queue with spaces", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"queue\":\"a b\"}"), 65,
        ["line 3", "invalid queue name"]),
    row("batch line 3 invalid UTF-8", ["enqueue", "--batch"], stdin: bytes(twoGoodLines) + [0x7B, 0xFF, 0xFE, 0x7D, 0x0A], 65,
        ["line 3", "UTF-8"]),
    row("batch line 3 NUL byte", ["enqueue", "--batch"], stdin: bytes(twoGoodLines + "{\"kind\":\"b\",\"payload\":\"a") + [0] + bytes("\"}\n"),
        65, ["line 3", "not valid JSON"]),
    row("batch line 3 payload over 1 MiB", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"payload\":\(overLimit)}"), 65,
        ["line 3", "limit"]),
    row("batch line 3 priority not an integer", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"priority\":\"high\"}"), 65,
        ["line 3", "priority", "integer"]),
    row("batch line 3 priority past Int64", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"priority\":99999999999999999999}"),
        65, ["line 3", "priority"]),
    row("batch line 3 max_attempts 0", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"max_attempts\":0}"), 65,
        ["line 3", "max attempts"]),
    row("batch line 3 negative delay", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"delay\":-1}"), 65, ["line 3", "delay"]),
    row("batch line 3 bad at", ["enqueue", "--batch"], stdin: batchLine3("{\"kind\":\"b\",\"at\":\"soon\"}"), 65, ["line 3", "invalid time"]),
    row("batch line 3 delay and at", ["enqueue", "--batch"],
        stdin: batchLine3("{\"kind\":\"b\",\"delay\":5,\"at\":\"2030-01-01T00:00:00Z\"}"), 65, ["line 3", "not both"]),
    row("batch line 3 truncated (no newline)", ["enqueue", "--batch"], stdin: bytes(twoGoodLines + "{\"kind\":\"b\",\"pay"), 65,
        ["line 3", "not valid JSON"]),
    row("batch on empty stdin", ["enqueue", "--batch"], stdin: [], 65, ["no tasks on stdin"]),
    row("lines: bad first line", ["enqueue", "t", "--lines"], stdin: bytes("{oops\n2\n"), 65, ["line 1", "nothing was enqueued"]),
    row("lines: bad first line creates no database", ["enqueue", "t", "--lines", "--db", "fresh.db"], stdin: bytes("{oops\n"), 65,
        ["line 1", "not valid JSON"]),
    row("lines: bad first line leaves an empty file empty", ["enqueue", "t", "--lines", "--db", "empty.db"], stdin: bytes("{oops\n"),
        65, ["line 1", "not valid JSON"], files: ["empty.db": []]),

    // supervise.
    row("supervise without --handler", ["supervise", "--workers", "1"], 64, ["--handler"]),
    row("--handler without =", ["supervise", "--handler", "resize"], 64, ["--handler", "no '='"]),
    row("--handler with empty kind", ["supervise", "--handler", "=./x.sh"], 64, ["--handler", "empty"]),
    row("--handler with empty command", ["supervise", "--handler", "resize="], 64, ["--handler", "empty command"]),
    row("--handler kind with a space", ["supervise", "--handler", "a b=cat"], 64, ["--handler", "invalid kind name"]),
    row("--handler for the reserved kind", ["supervise", "--handler", "taskq.stop=cat"], 64, ["--handler", "reserved"]),
    row("--handler kind twice", ["supervise", "--handler", "a=cat", "--handler", "a=wc"], 64, ["--handler", "twice"]),
    row("--workers 0", ["supervise", "--workers", "0", "--handler", "a=cat"], 64, ["--workers", "at least 1"]),
    row("--workers negative", ["supervise", "--workers", "-3", "--handler", "a=cat"], 64, ["--workers", "at least 1"]),
    row("--workers huge", ["supervise", "--workers", "99999999999999999999", "--handler", "a=cat"], 64, ["--workers"]),
    row("--workers over 1024", ["supervise", "--workers", "2000", "--handler", "a=cat"], 64, ["--workers", "1024"]),
    row("--workers without a value", ["supervise", "--handler", "a=cat", "--workers"], 64, ["missing value", "--workers"]),
    row("--lease 0", ["supervise", "--handler", "a=cat", "--lease", "0"], 64, ["--lease"]),
    row("--lease garbage", ["supervise", "--handler", "a=cat", "--lease", "long"], 64, ["--lease", "invalid duration"]),
    row("--shutdown-timeout negative", ["supervise", "--handler", "a=cat", "--shutdown-timeout", "-1"], 64, ["--shutdown-timeout"]),
    row("--backoff-base garbage", ["supervise", "--handler", "a=cat", "--backoff-base", "x"], 64, ["--backoff-base"]),
    row("--backoff-cap shorter than --backoff-base", ["supervise", "--handler", "a=cat", "--backoff-base", "10", "--backoff-cap", "1"], 64,
        ["--backoff-cap", "--backoff-base"]),
    row("supervise --queue with SQL", ["supervise", "--handler", "a=cat", "--queue", sqlName], 64, ["--queue", "invalid queue name"]),
    row("supervise --db is a directory", ["supervise", "--handler", "a=cat", "--until-empty", "--db", "."], 65, ["directory"]),
    row("supervise --db in a missing directory", ["supervise", "--handler", "a=cat", "--until-empty", "--db", "nodir/q.db"], 66,
        ["directory does not exist"]),

    // Ids.
    row("show non-numeric id", ["show", "abc"], 64, ["invalid", "<id>"]),
    row("show fractional id", ["show", "1.5"], 64, ["invalid", "<id>"]),
    row("show huge id", ["show", "99999999999999999999"], 64, ["invalid", "<id>"]),
    row("show negative id", ["show", "--", "-1"], 64, ["positive"]),
    row("show id 0", ["show", "0"], 64, ["positive"]),
    row("show without id", ["show"], 64, ["missing", "<id>"]),
    row("show unknown id", ["show", "999"], 66, ["no task 999"]),
    row("show --json unknown id", ["show", "999", "--json"], 66, ["no task 999"]),
    row("result non-numeric id", ["result", "one"], 64, ["invalid", "<id>"]),
    row("result unknown id", ["result", "999"], 66, ["no task 999"]),
    row("result --wait unknown id", ["result", "999", "--wait", "--timeout", "1"], 66, ["no task 999"]),
    row("result --timeout without --wait", ["result", "1", "--timeout", "1"], 64, ["--timeout", "--wait"]),
    row("result --wait --timeout negative", ["result", "1", "--wait", "--timeout", "-1"], 64, ["--timeout", "negative"]),
    row("result --wait --timeout garbage", ["result", "1", "--wait", "--timeout", "soon"], 64, ["--timeout", "invalid duration"]),

    // list / stop options.
    row("list --state bogus", ["list", "--state", "done"], 64, ["--state", "done"]),
    row("list --limit 0", ["list", "--limit", "0"], 64, ["--limit"]),
    row("list --limit negative", ["list", "--limit", "-5"], 64, ["--limit"]),
    row("list --limit huge", ["list", "--limit", "99999999999999999999"], 64, ["--limit"]),
    row("list --queue with SQL", ["list", "--queue", sqlName], 64, ["invalid queue name"]),
    row("list --kind with quotes", ["list", "--kind", "\"t\""], 64, ["invalid kind name"]),
    row("stop --timeout without --wait", ["stop", "--timeout", "5"], 64, ["--timeout", "--wait"]),
    row("stop with no supervisor", ["stop"], 1, ["no supervisor is running"]),

    // Databases that are missing or are not databases. Read-only commands create nothing.
    row("status, no database", ["status"], 66, ["no database"], fixture: false),
    row("status --json, no database", ["status", "--json"], 66, ["no database"], fixture: false),
    row("list, no database", ["list"], 66, ["no database"], fixture: false),
    row("show, no database", ["show", "1"], 66, ["no database"], fixture: false),
    row("result, no database", ["result", "1"], 66, ["no database"], fixture: false),
    row("result --wait, no database", ["result", "1", "--wait", "--timeout", "1"], 66, ["no database"], fixture: false),
    row("stop, no database", ["stop"], 66, ["no database"], fixture: false),
    row("stop --now, no database", ["stop", "--now"], 66, ["no database"], fixture: false),
    row("kind list, no database", ["kind", "list"], 66, ["no database"], fixture: false),
    row("kind remove, no database", ["kind", "remove", "k"], 66, ["no database"], fixture: false),
    row("status, $TASKQ_DB missing", ["status"], 66, ["no database", "missing.db"], env: ["TASKQ_DB": "missing.db"]),
    row("list --db missing", ["list", "--db", "missing.db"], 66, ["no database", "missing.db"]),
    row("show --db in a missing directory", ["show", "1", "--db", "nodir/q.db"], 66, ["no database"]),
    row("enqueue --db in a missing directory", ["enqueue", "t", "1", "--db", "nodir/q.db"], 66, ["directory does not exist"]),
    row("init --db in a missing directory", ["init", "--db", "nodir/q.db"], 66, ["directory does not exist"]),
    row("enqueue --db is a directory", ["enqueue", "t", "1", "--db", "."], 65, ["directory"]),
    row("status --db is a directory", ["status", "--db", "."], 65, ["directory"]),
    row("init --db is a directory", ["init", "--db", "."], 65, ["directory"]),
    row("enqueue into a file that is not a database", ["enqueue", "t", "1", "--db", "notes.txt"], 65, ["not a", "database"],
        files: ["notes.txt": notADatabase]),
    row("status on a file that is not a database", ["status", "--db", "notes.txt"], 65, ["not a", "database"],
        files: ["notes.txt": notADatabase]),
]

/// A fingerprint of everything a command could have changed in a taskq database.
private func fingerprint(_ db: String) -> String {
    sqlite(db, """
        SELECT count(*), ifnull(max(id), 0) FROM tasks;
        SELECT id, kind, queue, state, priority, payload, run_at, attempts, max_attempts, ifnull(timeout_s, '-'),
               ifnull(owner, '-'), created_at, ifnull(result, '-'), ifnull(last_error, '-') FROM tasks ORDER BY id;
        SELECT count(*) FROM processes;
        SELECT * FROM kinds;
        SELECT type, name, ifnull(sql, '') FROM sqlite_master ORDER BY name;
        SELECT version, name FROM taskq_migrations;
        PRAGMA user_version;
        """)
}

/// Names and contents of the directory's entries (directories as a marker),
/// leaving out the fixture database, which `fingerprint` covers.
private func snapshot(_ dir: String, skipDatabase: Bool) -> [String: [UInt8]] {
    var out: [String: [UInt8]] = [:]
    for name in listDirectory(dir) {
        if skipDatabase && (name == "taskq.db" || name == "taskq.db-wal" || name == "taskq.db-shm") { continue }
        var st = stat()
        stat(dir + "/" + name, &st)
        out[name] = (st.st_mode & S_IFMT) == S_IFDIR ? Array("<dir>".utf8) : readAll(dir + "/" + name)
    }
    return out
}

private func writeBytes(_ path: String, _ data: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "cannot write \(path)")
    data.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Words that only a Swift runtime crash prints.
let crashMarkers = ["Fatal error", "Stack dump", "Current stack trace", "Illegal instruction", "Segmentation fault",
                    "Trace/breakpoint trap", "💣"]

@Suite struct BadInputTests {
    init() {
        // A child that stops reading stdin early must not take the test process
        // down with SIGPIPE (children get a reset signal state).
        signal(SIGPIPE, SIG_IGN)
    }

    @Test func theTableCoversEveryCommand() {
        #expect(badInputs.count >= 60)
        let commands = Set(badInputs.compactMap(\.args.first))
        for c in ["enqueue", "supervise", "status", "list", "show", "result", "stop", "init"] {
            #expect(commands.contains(c), "no bad-input row for \(c)")
        }
        #expect(Set(badInputs.map(\.name)).count == badInputs.count, "row names must be unique")
    }

    @Test(arguments: badInputs)
    func badInput(_ c: BadInput) throws {
        let s = Scenario("taskq-bad")
        defer { s.close() }
        if c.fixture {
            let r = s.taskq(["enqueue", "--batch"], stdin: """
                {"kind":"t","payload":{"i":1}}
                {"kind":"t","queue":"q2","payload":[1,2],"priority":3}
                {"kind":"u","payload":"s","delay":"1h","max_attempts":5,"timeout":9}
                """)
            try #require(r.status == 0, "fixture: \(r)")
        }
        for (name, data) in c.files { writeBytes(s.dir + "/" + name, data) }
        let dbBefore = c.fixture ? fingerprint(s.db) : ""
        let filesBefore = snapshot(s.dir, skipDatabase: c.fixture)

        let r = run(Harness.taskq, c.args, stdin: c.stdin, env: c.env, cwd: s.dir, timeout: 30)

        #expect(r.status == c.code, "\(c): \(r)")
        let first = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        #expect(first.hasPrefix("taskq: "), "first stderr line should say what was wrong: \(r)")
        for w in c.words {
            #expect(first.lowercased().contains(w.lowercased()), "first stderr line lacks \"\(w)\": \(first)")
        }
        for m in crashMarkers { #expect(!r.stderr.contains(m), "crash trace: \(r.stderr)") }
        #expect(r.stdout.isEmpty, "a failed command printed on stdout: \(r.stdout)")
        // Nothing written: the database is as it was, no file appeared or changed.
        if !c.fixture { #expect(access(s.db, F_OK) != 0, "a read-only command created ./taskq.db") }
        if c.fixture { #expect(fingerprint(s.db) == dbBefore, "the database changed") }
        let filesAfter = snapshot(s.dir, skipDatabase: c.fixture)
        #expect(filesAfter.keys.sorted() == filesBefore.keys.sorted(), "files before \(filesBefore.keys.sorted()), after \(filesAfter.keys.sorted())")
        let unchanged = filesAfter == filesBefore
        #expect(unchanged, "a file changed: \(filesAfter.keys.filter { filesAfter[$0] != filesBefore[$0] })")
    }

    /// A database whose write lock another process holds: enqueue gives up after
    /// --busy-timeout with exit 69 and a message naming the lock; reads still work.
    @Test func lockedDatabaseExits69AndReadsStillWork() {
        let s = Scenario("taskq-bad")
        defer { s.close() }
        s.enqueue("t")
        let before = fingerprint(s.db)
        let holder = Child("/usr/bin/sqlite3", [s.db], cwd: s.dir,
                           stdinData: Array("BEGIN IMMEDIATE;\n.shell touch locked\n.shell sleep 5\nROLLBACK;\n".utf8), logDir: s.dir)
        defer { holder.kill9() }
        #expect(eventually(timeout: 10) { access(s.dir + "/locked", F_OK) == 0 })
        let start = System.monotonic()
        let r = s.taskq(["enqueue", "t", "2", "--busy-timeout", "0.3"])
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.hasPrefix("taskq: database ") && r.stderr.contains("is locked"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(System.monotonic() - start < 4, "gave up after the busy timeout, not after the lock was released")
        let status = s.taskq(["status", "--json"])
        #expect(status.status == 0, "readers are not blocked by a writer: \(status)")
        holder.kill9()
        #expect(fingerprint(s.db) == before)
    }

    /// A SQLite database that is not taskq's must be refused and left byte for
    /// byte as it was (no journal-mode switch, no tables added).
    @Test func someoneElsesSQLiteDatabaseIsLeftAlone() {
        let s = Scenario("taskq-bad")
        defer { s.close() }
        let other = s.dir + "/app.db"
        _ = sqlite(other, "CREATE TABLE users(name TEXT); INSERT INTO users VALUES ('ann');")
        let before = readAll(other)
        for args in [["status", "--db", other], ["enqueue", "t", "1", "--db", other]] {
            let r = s.taskq(args)
            #expect(r.status == 65, "\(r)")
            #expect(r.stderr.hasPrefix("taskq: \(other) is a SQLite database but not a taskq database"), "\(r)")
        }
        let unchanged = readAll(other) == before
        #expect(unchanged, "someone else's database was modified")
        #expect(sqlite(other, "PRAGMA journal_mode") == "delete")
    }

    /// An empty file (say, from `touch`) is not a database a read-only command may
    /// fill with a schema.
    @Test func readOnlyCommandOnAnEmptyFileCreatesNoSchema() {
        let s = Scenario("taskq-bad")
        defer { s.close() }
        writeBytes(s.db, [])
        let r = s.taskq(["status"])
        #expect(r.status == 66, "\(r)")
        let size = readAll(s.db).count
        #expect(size == 0, "status wrote a schema into an empty file")
    }
}
