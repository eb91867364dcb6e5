import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct DatabasePathTests {
    /// Debian's SQLite is compiled to read a path beginning with `file:` as a URI
    /// (`file:q.db` would name ./q.db); taskq's --db is a file name on either build.
    @Test func aPathThatLooksLikeAURIIsAFileName() {
        let dir = Harness.tempDir("taskq-uri-path")
        defer { Harness.remove(dir) }
        let r = taskq(["init", "--db", "file:q.db"], cwd: dir)
        #expect(r.status == 0, "\(r)")
        let e = taskq(["enqueue", "t", "{}", "--db", "file:q.db"], cwd: dir)
        #expect(e.status == 0, "\(e)")
        #expect(sqliteInt(dir + "/file:q.db", "SELECT count(*) FROM tasks") == 1)
        #expect(access(dir + "/q.db", F_OK) != 0, "SQLite opened file:q.db as the URI of ./q.db")
    }
}
