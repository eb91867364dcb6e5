// The library's side of forgiving input: JSON errors that say how to fix the
// common mistakes, a version to report, a cancel reason that does not name the CLI,
// and a map line handed to its command as text.

import Testing
@testable import TaskQueue
import TaskQueueSQLite
import TaskQueueTestSupport

@Suite struct JSONHintTests {
    private func error(_ text: String) -> JSONSyntaxError? {
        do { try JSON.validate(text) } catch { return error }
        return nil
    }

    @Test(arguments: [
        ("{'a': 1}", "JSON needs double quotes"),
        ("'hello'", "JSON needs double quotes: \"hello\""),
        ("['a']", "JSON needs double quotes"),
        ("hello", "a JSON string needs double quotes: \"hello\""),
        ("  two words ", "a JSON string needs double quotes: \"two words\""),
        ("nothing", "a JSON string needs double quotes: \"nothing\""),
        ("{a: 1}", "JSON keys need double quotes, e.g. {\"key\": 1}"),
        ("{\"a\": 1, b: 2}", "JSON keys need double quotes, e.g. {\"key\": 1}"),
    ])
    func commonMistakesGetTheirFix(_ text: String, _ hint: String) throws {
        let e = try #require(error(text))
        #expect(e.hint == hint)
        #expect(e.description.hasSuffix(" (\(hint))"), "\(e)")
        // parse gives the same error as validate.
        #expect(throws: e) { try JSON.parse(text) }
    }

    @Test(arguments: ["{", "[1,]", "1 2", "-", "{\"a\" 1}", "\"abc"])
    func otherErrorsHaveNoHint(_ text: String) throws {
        let e = try #require(error(text))
        #expect(e.hint == nil, "\(e)")
        #expect(e.description == "\(e.message) at byte \(e.offset)")
    }

    @Test func aLongBareWordIsNotRepeated() throws {
        let e = try #require(error(String(repeating: "x", count: 100)))
        #expect(e.hint == "a JSON string needs double quotes around it")
    }

    @Test func validPayloadsStillPass() throws {
        for text in ["true", "null", "\"it's\"", "{\"a\": 'x'}".replacingOccurrences(of: "'", with: "\"")] {
            try JSON.validate(text)
        }
    }
}

@Suite struct VersionAndCancelTests {
    @Test func theVersionIsSemantic() {
        let parts = TaskQueueVersion.current.split(separator: ".")
        #expect(parts.count == 3 && parts.allSatisfy { Int($0) != nil }, "\(TaskQueueVersion.current)")
    }

    /// A cancel through the Swift API does not claim to be `taskq cancel`.
    @Test func aLibraryCancelSaysCancelled() throws {
        let dir = Harness.tempDir("taskq-cancel")
        defer { Harness.remove(dir) }
        let q = try Queue.open(path: dir + "/taskq.db")
        let id = try q.enqueue(kind: "k")
        _ = try q.cancel([id])
        #expect(try q.task(id)?.lastError == "cancelled")
        let other = try q.enqueue(kind: "k")
        _ = try q.cancel([other], reason: "superseded by a newer report")
        #expect(try q.task(other)?.lastError == "superseded by a newer report")
    }
}

@Suite struct TextInputTests {
    @Test func aJSONStringPayloadIsHandedOverAsItsTextWithTextInput() {
        var runner = CommandRunner(command: "cat", environment: [])
        #expect(runner.input("\"a \\\"b\\\"\"") == Array("\"a \\\"b\\\"\"".utf8))
        runner.textInput = true
        #expect(runner.input("\"a \\\"b\\\"\"") == Array("a \"b\"\n".utf8))
        #expect(runner.input("\"\"") == Array("\n".utf8))
        // Other payloads (a task enqueued by hand for the kind) stay JSON.
        #expect(runner.input("{\"n\": 1}") == Array("{\"n\": 1}".utf8))
    }

    @Test func workerConfigCarriesTheTextInputKinds() throws {
        var c = WorkerConfig(database: "/tmp/x.db", supervisorID: 1, supervisorPID: 2)
        #expect(!c.json.contains("text_input"))
        c.textInput = ["map"]
        let back = try WorkerConfig(json: c.json)
        #expect(back.textInput == ["map"])
        #expect(back == c)
    }
}
