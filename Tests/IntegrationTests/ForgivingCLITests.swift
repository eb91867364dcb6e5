import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a new user types from the README and `--help`, taken literally: options
/// before the command, typos, shell-quoting slips. Each is understood or answered
/// with the fix, in one line, with the documented exit status.
@Suite struct ForgivingCLITests {
    private func firstLine(_ r: RunResult) -> String {
        String(r.stderr.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
    }

    @Test func globalOptionsMayComeBeforeTheCommand() {
        let s = Scenario("taskq-cli")
        defer { s.close() }
        let other = s.dir + "/other.db"
        #expect(s.taskq(["--db", other, "init"]).status == 0)
        let id = s.taskq(["--db", other, "--busy-timeout", "5", "enqueue", "k", "1"])
        #expect(id.status == 0 && id.out == "1", "\(id)")
        #expect(s.taskq(["--db=\(other)", "--synchronous", "full", "enqueue", "k", "2", "--queue", "q2"]).out == "2")
        let list = s.taskq(["--db", other, "list", "--json"])
        #expect(list.status == 0 && list.stdout.contains("\"queue\":\"q2\""), "\(list)")
        // A group's subcommand takes them too, and an enqueue past the fast path.
        #expect(s.taskq(["--db", other, "kind", "set", "k", "--max-attempts", "2"]).status == 0)
        #expect(s.taskq(["--db", other, "enqueue", "k", "3", "--delay", "1h"]).out == "3")
        let stop = s.taskq(["--db", other, "stop"])
        #expect(stop.status == 1 && stop.stderr.contains("no supervisor is running on \(other)"), "\(stop)")
        // Nothing went to ./taskq.db.
        #expect(access(s.db, F_OK) != 0)
        #expect(s.taskq(["--db", other, "help", "stop"]).stdout.contains("USAGE: taskq stop"))
    }

    @Test(arguments: [
        (["--json", "status"], "taskq: --json goes after the command name: taskq status --json …"),
        (["--queue", "q", "list"], "taskq: --queue goes after the command name: taskq list --queue …"),
        (["--db"], "taskq: --db needs a value, e.g. taskq --db VALUE status"),
        (["--db", "x.db"], "taskq: --db x.db needs a command after it, e.g. taskq --db x.db status"),
        (["-v"], "taskq: unknown option '-v'; did you mean 'taskq --version'?"),
    ])
    func otherOptionsBeforeTheCommandAreNamed(_ args: [String], _ message: String) {
        let s = Scenario("taskq-cli")
        defer { s.close() }
        let r = s.taskq(args)
        #expect(r.status == 64, "\(r)")
        #expect(firstLine(r) == message, "\(r)")
        #expect(r.stdout.isEmpty)
    }

    @Test(arguments: [
        (["frobnicate", "--db", "x.db"], "taskq: unknown command 'frobnicate'", "Run 'taskq --help' for the list of commands."),
        (["enqueu", "x", "1"], "taskq: unknown command 'enqueu'; did you mean 'enqueue'?", "Run 'taskq --help' for the list of commands."),
        (["stauts"], "taskq: unknown command 'stauts'; did you mean 'status'?", "Run 'taskq --help' for the list of commands."),
        (["--db", "x.db", "sup"], "taskq: unknown command 'sup'; did you mean 'supervise'?", "Run 'taskq --help' for the list of commands."),
        (["kind", "sett", "k"], "taskq: unknown command 'kind sett'; did you mean 'kind set'?",
         "Run 'taskq kind --help' for the list of commands."),
        (["version"], "taskq: unknown command 'version'; did you mean 'taskq --version'?", "Run 'taskq --help' for the list of commands."),
    ])
    func unknownCommandsAreNamedWithTheClosestOne(_ args: [String], _ message: String, _ hint: String) {
        let s = Scenario("taskq-cli")
        defer { s.close() }
        let r = s.taskq(args)
        #expect(r.status == 64, "\(r)")
        #expect(r.stderr == message + "\n" + hint + "\n", "\(r)")
        #expect(r.stdout.isEmpty)
        #expect(access(s.dir + "/x.db", F_OK) != 0)
    }

    @Test func versionIsOnTheRootCommandOnly() {
        let r = taskq(["--version"])
        #expect(r.status == 0 && r.stdout == "taskq \(TaskQueueVersion.current)\n", "\(r)")
        #expect(taskq(["--help"]).stdout.contains("--version"))
        for command in [["enqueue"], ["status"], ["map"], ["kind", "set"]] {
            let help = taskq(command + ["--help"])
            #expect(help.status == 0)
            #expect(!help.stdout.contains("--version"), "taskq \(command.joined(separator: " ")) --help shows --version")
        }
    }

    /// The command list at the top of docs/cli.md names every command `taskq --help` lists.
    @Test func theReferenceListsEveryCommand() throws {
        var root = #filePath
        for _ in 0..<3 { root = String(root[..<root.lastIndex(of: "/")!]) }
        let doc = String(decoding: readAll(root + "/docs/cli.md"), as: UTF8.self)
        let list = try #require(doc.split(separator: "```").dropFirst().first)
        let help = taskq(["--help"]).stdout
        let section = try #require(help.split(separator: "SUBCOMMANDS:").last)
        let commands = section.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first else { return nil }
            return String(name)
        }.filter { $0 != "See" }
        #expect(commands.count >= 18, "\(commands)")
        for c in commands { #expect(list.contains("taskq \(c) "), "docs/cli.md's command list lacks \(c)") }
    }

    @Test func helpPrintsDefaultsAsDocumented() {
        for command in [["status"], ["enqueue"], ["supervise"], ["map"], ["wait"], ["top"], ["schedule", "add"], ["kind", "set"]] {
            let help = taskq(command + ["--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("(default: 10)"), "taskq \(command.joined(separator: " ")) --help")
            #expect(!help.stdout.contains(".0)"), "a Double default printed as Swift prints it: taskq \(command.joined(separator: " ")) --help")
        }
    }

    @Test(arguments: [
        (["enqueue", "email", "hello"], 65,
         #"taskq: payload is not valid JSON: unexpected character 'h'; expected a value at byte 0 (a JSON string needs quotes: '"hello"')"#),
        (["enqueue", "email", "{'to': 'ann'}"], 65,
         #"taskq: payload is not valid JSON: unexpected character "'"; expected a string key at byte 1 (JSON needs double quotes)"#),
        (["enqueue", "email", "{to: 1}"], 65,
         #"taskq: payload is not valid JSON: unexpected character 't'; expected a string key at byte 1 (JSON keys need double quotes, e.g. {"key": 1})"#),
        (["enqueue", "report", "--delay", "10", "minutes", "{}"], 64,
         "taskq: --delay 10 minutes: give the duration as one word, e.g. --delay 10m (forms: 250ms, 90s, 10m, 2h, 1d)"),
        (["enqueue", "report", "{}", "--timeout", "2", "hours"], 64,
         "taskq: --timeout 2 hours: give the duration as one word, e.g. --timeout 2h (forms: 250ms, 90s, 10m, 2h, 1d)"),
    ])
    func mistakesGetTheFixInOneLine(_ args: [String], _ code: Int32, _ message: String) {
        let s = Scenario("taskq-cli")
        defer { s.close() }
        let r = s.taskq(args)
        #expect(r.status == code, "\(r)")
        #expect(r.stderr == message + "\n", "\(r)")
        #expect(access(s.db, F_OK) != 0, "nothing written")
    }

    @Test func aBareWordOnStdinOrInBatchLinesGetsTheLibraryHint() {
        let s = Scenario("taskq-cli")
        defer { s.close() }
        let stdin = s.taskq(["enqueue", "email", "-"], stdin: "hello\n")
        #expect(stdin.status == 65)
        #expect(stdin.stderr.hasSuffix("(a JSON string needs double quotes: \"hello\")\n"), "\(stdin)")
        let lines = s.taskq(["enqueue", "email", "--lines"], stdin: "'a'\n")
        #expect(lines.status == 65)
        #expect(lines.stderr.contains("(JSON needs double quotes: \"a\")"), "\(lines)")
    }

    @Test func listHidesStopSentinelsUnlessAsked() {
        let s = Scenario("taskq-cli")
        defer { s.close() }
        s.enqueue("t", "1")
        let sup = s.supervise(["--workers", "1", "--handler", "t=cat"])
        #expect(eventually { s.count("succeeded") == 1 }, "\(sup.stderrSoFar)")
        #expect(s.taskq(["stop", "--wait", "--timeout", "30"]).status == 0)
        #expect(s.sqlInt("SELECT count(*) FROM tasks WHERE kind = 'taskq.stop'") == 1)
        let plain = s.taskq(["list"])
        #expect(plain.status == 0 && !plain.stdout.contains("taskq.stop") && plain.stdout.contains("t "), "\(plain)")
        #expect(!s.taskq(["list", "--json"]).stdout.contains("taskq.stop"))
        #expect(s.taskq(["list", "--all"]).stdout.contains("taskq.stop"))
        #expect(s.taskq(["list", "--kind", "taskq.stop"]).stdout.contains("taskq.stop"))
        // --limit counts what is shown: the sentinel does not take the only place.
        #expect(s.taskq(["list", "--limit", "1"]).stdout.contains(" t "))
    }

    @Test func kindSetSaysWhatItSetAsASentence() {
        let s = Scenario("taskq-cli")
        defer { s.close() }
        let r = s.taskq(["kind", "set", "email", "--max-attempts", "10", "--backoff-base", "30s", "--backoff-cap", "1h"])
        #expect(r.out == "Tasks of kind email enqueued from now on get at most 10 attempts and wait 30s before their second attempt (doubling up to 1h00m).", "\(r)")
        let c = s.taskq(["kind", "set", "charge", "--on-crash", "fail", "--max-attempts", "1"])
        #expect(c.out == "Tasks of kind charge enqueued from now on get 1 attempt and end failed, not retried, when their worker crashes.", "\(c)")
        let cleared = s.taskq(["kind", "set", "charge", "--unset", "on-crash", "--unset", "max-attempts"])
        #expect(cleared.out == "Kind charge has no policy now: its tasks get their own options, else the supervisor's, else the defaults.")
    }
}
