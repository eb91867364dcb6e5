import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `taskq map` as xargs and parallel users expect it: the line itself on the
/// handler's stdin, and a re-run that says what it replayed.
@Suite struct MapInputTests {
    @Test func aPlainLineReachesTheHandlerAsItself() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        let r = s.taskq(["map", "--workers", "2", "--handler", "n=$(cat); echo $((n*n))"], stdin: "1\n2\n3\n4\n5\n", timeout: 60)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == "1\n4\n9\n16\n25\n", "\(r)")
        // Quotes, backslashes, tabs and non-ASCII text arrive untouched, with a
        // newline, so `read -r` works as well as `cat`.
        let odd = "a \"quoted\" \\back\\\ttab é"
        let raw = s.taskq(["map", "--kind", "raw", "--handler", #"read -r x; printf '[%s]' "$x""#], stdin: odd + "\n", timeout: 60)
        #expect(raw.status == 0 && raw.stdout == "[\(odd)]\n", "\(raw)")
        // Stored readably: sqlite3 shows the line as a JSON string.
        #expect(s.sql("SELECT payload FROM tasks WHERE kind = 'raw'") == JSON.quote(odd))
        // --json keeps handing the JSON over as it is.
        let json = s.taskq(["map", "--json", "--kind", "js", "--handler", "cat"], stdin: "\"s\"\n{\"n\":1}\n", timeout: 60)
        #expect(json.status == 0 && json.stdout == "\"s\"\n{\"n\":1}\n", "\(json)")
    }

    @Test func aRerunSaysItReplayedAndFreshRunsEverythingAgain() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        let handler = #"n=$(cat); echo "$n" >> audit; echo "r$n""#
        let input = "1\n2\n3\n"
        let expected = "r1\nr2\nr3\n"
        func runs() -> Int { String(decoding: readAll(s.dir + "/audit"), as: UTF8.self).split(separator: "\n").count }

        let first = s.taskq(["map", "--handler", handler], stdin: input, timeout: 60)
        #expect(first.status == 0 && first.stdout == expected && first.stderr.isEmpty, "\(first)")
        #expect(runs() == 3)
        let group = s.sql("SELECT DISTINCT group_name FROM task_groups")

        let again = s.taskq(["map", "--handler", handler], stdin: input, timeout: 60)
        #expect(again.status == 0 && again.stdout == expected, "\(again)")
        #expect(again.stderr == "taskq: 3 of 3 results replayed from an earlier run (map group \(group)); use --fresh to run them again\n",
                "\(again)")
        #expect(runs() == 3, "nothing ran again")

        let fresh = s.taskq(["map", "--fresh", "--handler", handler], stdin: input, timeout: 60)
        #expect(fresh.status == 0 && fresh.stdout == expected && fresh.stderr.isEmpty, "\(fresh)")
        #expect(runs() == 6, "every line ran again")
        // The earlier run's rows stay; a later run resumes the newest generation.
        #expect(s.sql("SELECT group_name || ' ' || count(*) FROM task_groups GROUP BY group_name ORDER BY group_name")
                == "\(group) 3\n\(group):2 3")
        let third = s.taskq(["map", "--handler", handler], stdin: input, timeout: 60)
        #expect(third.stderr.contains("3 of 3 results replayed from an earlier run (map group \(group):2)"), "\(third)")
        #expect(runs() == 6)
    }

    @Test func aRerunWithNothingToReplaySaysItResumes() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        let handler = "[ -e ok ] && cat || exit 3"
        let first = s.taskq(["map", "--group", "g", "--handler", handler], stdin: "a\nb\n", timeout: 60)
        #expect(first.status == 1, "\(first)")
        creat(s.dir + "/ok", 0o644)
        let again = s.taskq(["map", "--group", "g", "--handler", handler], stdin: "a\nb\n", timeout: 60)
        #expect(again.status == 0 && again.stdout == "a\nb\n", "\(again)")
        #expect(again.stderr == "taskq: resuming an earlier run of this map (map group g, 2 failed lines run again)\n", "\(again)")
    }

    @Test func freshStartsANamedGroupOverWithOtherInput() {
        let s = Scenario("taskq-map")
        defer { s.close() }
        #expect(s.taskq(["map", "--group", "g", "--handler", "cat"], stdin: "a\nb\n", timeout: 60).status == 0)
        let other = s.taskq(["map", "--group", "g", "--handler", "cat"], stdin: "c\n", timeout: 60)
        #expect(other.status == 65 && other.stderr.contains("or --fresh"), "\(other)")
        let fresh = s.taskq(["map", "--group", "g", "--fresh", "--handler", "cat"], stdin: "c\n", timeout: 60)
        #expect(fresh.status == 0 && fresh.stdout == "c\n", "\(fresh)")
        #expect(s.sqlInt("SELECT count(*) FROM task_groups WHERE group_name = 'g:2'") == 1)
    }
}
