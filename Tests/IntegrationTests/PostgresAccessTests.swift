// What a user gets wrong about a PostgreSQL queue, with the real binary: a wrong
// password, a role without the privileges taskq needs, a schema without taskq's
// tables, one written by a newer taskq. Each is one line on stderr with the documented
// exit code, names what is wrong, echoes no password and writes nothing.

import Testing
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .enabled(if: PostgresServer.url != nil, Comment(rawValue: PostgresServer.skipReason)))
struct PostgresAccessTests {
    /// Whether the test server lets us create roles and log in as them without a
    /// password (the private server does: trust over its unix socket).
    static let canCreateRoles: Bool = {
        guard let url = PostgresServer.url else { return false }
        let role = "taskq_probe_\(getpid())"
        defer { PostgresServer.psql(url, "DROP ROLE IF EXISTS \(role)") }
        return PostgresServer.psql(url, "CREATE ROLE \(role) LOGIN").status == 0
            && PostgresServer.psql(login(role, url), "SELECT 1").status == 0
    }()

    /// `r` failed as documented: exit `status`, one line on stderr holding `naming`,
    /// no crash trace, none of `secrets`.
    private func oneLine(_ r: RunResult, _ status: Int32, _ naming: String, secrets: [String] = [],
                         sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "\(r)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(naming), "\(r)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal error") && secrets.allSatisfy { !r.stderr.contains($0) && !r.stdout.contains($0) },
                "\(r)", sourceLocation: sourceLocation)
    }

    @Test(.enabled(if: PasswordServer.possible, "needs \(PostgresServer.bin)/initdb to start a server that asks for passwords; skipped"))
    func aWrongPasswordIsOneLineWithoutThePassword() throws {
        let server = try #require(PasswordServer(password: "right-horse-battery"))
        defer { server.stop() }
        let s = Scenario("taskq-pgaccess")
        defer { s.close() }
        let inURL = s.taskq(["status", "--db", server.url(password: "wrong-in-url")])
        oneLine(inURL, 69, "password authentication failed", secrets: ["wrong-in-url", "right-horse-battery"])
        let inEnv = s.taskq(["enqueue", "t", "1", "--db", server.url()], env: ["PGPASSWORD": "wrong-in-env"])
        oneLine(inEnv, 69, "password authentication failed", secrets: ["wrong-in-env"])
        let keyValue = s.taskq(["supervise", "--until-empty", "--handler", "t=cat",
                                "--db", "host=\(server.dir) dbname=postgres password=wrong-key-value"])
        oneLine(keyValue, 69, "password authentication failed", secrets: ["wrong-key-value"])
        // The right one works, and nothing had been written before it.
        let right = s.taskq(["enqueue", "t", "1", "--db", server.url()], env: ["PGPASSWORD": "right-horse-battery"])
        #expect(right.status == 0 && right.out == "1", "\(right)")
    }

    @Test(.enabled(if: canCreateRoles, "needs a test server where roles can be created and log in without a password"))
    func aRoleWithoutPrivilegesIsToldWhichItLacks() {
        let url = PostgresServer.freshSchema()!
        let schema = url.split(separator: "%3D").last.map(String.init) ?? ""
        let role = "taskq_plain_\(getpid())"
        let admin = PostgresServer.psql
        defer { admin(url, "DROP OWNED BY \(role); DROP ROLE IF EXISTS \(role)") }
        #expect(admin(url, "DROP ROLE IF EXISTS \(role); CREATE ROLE \(role) LOGIN").status == 0)
        let s = Scenario("taskq-pgaccess")
        defer { s.close() }
        let db = Self.login(role, url)
        func tables() -> String { admin(url, "SELECT count(*) FROM pg_tables WHERE schemaname = '\(schema)'").out }

        oneLine(s.taskq(["init", "--db", db]), 69, "role \(role) lacks USAGE on schema \(schema)")
        admin(url, "GRANT USAGE ON SCHEMA \(schema) TO \(role)")
        oneLine(s.taskq(["init", "--db", db]), 69, "permission denied for schema \(schema) (role \(role) lacks CREATE on it)")
        oneLine(s.taskq(["enqueue", "t", "1", "--db", db]), 69, "lacks CREATE on it")
        #expect(tables() == "0", "nothing created")

        // Tables made by their owner; this role may read them only.
        #expect(s.taskq(["init", "--db", url]).status == 0)
        admin(url, "GRANT SELECT ON ALL TABLES IN SCHEMA \(schema) TO \(role)")
        #expect(s.taskq(["status", "--db", db]).status == 0)
        oneLine(s.taskq(["enqueue", "t", "1", "--db", db]), 69,
                "permission denied for table tasks (role \(role) lacks INSERT, UPDATE, DELETE on it)")
        oneLine(s.taskq(["supervise", "--until-empty", "--handler", "t=cat", "--db", db]), 69,
                "permission denied for table processes (role \(role) lacks INSERT, UPDATE, DELETE on it)")
        #expect(admin(url, "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM processes)").out == "0")
    }

    @Test func readCommandsOnASchemaWithoutTaskqTablesCreateNothing() {
        let url = PostgresServer.freshSchema()!
        let schema = url.split(separator: "%3D").last.map(String.init) ?? ""
        let s = Scenario("taskq-pgaccess")
        defer { s.close() }
        for args in [["status"], ["list"], ["show", "1"], ["result", "1"], ["wait", "1"], ["top", "--iterations", "1"], ["cancel", "1"]] {
            oneLine(s.taskq(args + ["--db", url]), 66, "no taskq database in ", secrets: [])
        }
        #expect(PostgresServer.psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = '\(schema)'").out == "0")
        // A search_path that names no schema: nowhere to look, nowhere to create.
        let nowhere = PostgresServer.with(PostgresServer.url!, searchPath: "no_such_schema_\(getpid())")
        oneLine(s.taskq(["status", "--db", nowhere]), 66, "has no schema named by search_path")
        oneLine(s.taskq(["init", "--db", nowhere]), 66, "has no schema named by search_path")
        // Somebody else's tables: not a taskq schema, left alone.
        PostgresServer.psql(url, "CREATE TABLE accounts (id int)")
        oneLine(s.taskq(["init", "--db", url]), 65, "is not a taskq schema")
        #expect(PostgresServer.psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = '\(schema)'").out == "1")
    }

    @Test func aSchemaFromANewerTaskqIsRefusedUntouched() {
        let url = PostgresServer.freshSchema()!
        let s = Scenario("taskq-pgaccess")
        defer { s.close() }
        #expect(s.taskq(["enqueue", "t", "1", "--db", url]).status == 0)
        PostgresServer.psql(url, "INSERT INTO taskq_migrations (version, name, applied_at) VALUES (99, 'from a newer taskq', now())")
        func snapshot() -> String {
            PostgresServer.psql(url, """
                SELECT (SELECT string_agg(id || state || attempts, ',') FROM tasks),
                       (SELECT string_agg(version::text, ',' ORDER BY version) FROM taskq_migrations),
                       (SELECT count(*) FROM processes)
                """).out
        }
        let before = snapshot()
        for args in [["status"], ["enqueue", "t", "2"], ["init"], ["supervise", "--until-empty", "--handler", "t=cat"],
                     ["cancel", "1"]] {
            oneLine(s.taskq(args + ["--db", url]), 69, "has taskq schema version 99, newer than this taskq knows")
        }
        #expect(snapshot() == before)
    }

    /// `url` logging in as `role`.
    static func login(_ role: String, _ url: String) -> String {
        if url.contains("://") { return url + (url.contains("?") ? "&" : "?") + "user=\(role)" }
        return url + " user=\(role)"
    }
}

/// A private PostgreSQL server that asks for a password (scram-sha-256, unix socket
/// only): the shared test server trusts every local login.
private final class PasswordServer {
    static var possible: Bool { access(PostgresServer.bin + "/initdb", X_OK) == 0 }

    let dir: String
    private let user: String

    init?(password: String) {
        dir = Harness.tempDir("taskq-pg")
        user = String(cString: getpwuid(getuid()).pointee.pw_name)
        let root = getuid() == 0
        if root { _ = run("/bin/chown", ["postgres:", dir]) }
        writeFile(dir + "/pw", password)
        if root { _ = run("/bin/chown", ["postgres:", dir + "/pw"]) }
        let initdb = Self.asServer([PostgresServer.bin + "/initdb", "-D", dir + "/data", "-U", user, "--auth=scram-sha-256",
                                    "--pwfile=\(dir)/pw", "-E", "UTF8", "--locale=C.UTF-8"])
        let options = "-c listen_addresses='' -k \(dir) -c fsync=off"
        guard initdb.status == 0,
              Self.asServer([PostgresServer.bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/server.log", "-o", options,
                             "-w", "-t", "60", "start"]).status == 0 else {
            stop()
            return nil
        }
        // The test run's own clean-up of abandoned servers stops this one too if the
        // test process dies before `stop`.
        writeFile(dir + "/owner", "\(getpid())\n")
    }

    /// Its URL, with `password` in it when given.
    func url(password: String? = nil) -> String {
        "postgresql://\(user)\(password.map { ":" + $0 } ?? "")@/postgres?host=\(dir)"
    }

    func stop() { PostgresServer.stopServer(dir) }

    private static func asServer(_ args: [String]) -> RunResult {
        getuid() == 0 ? run("/usr/sbin/runuser", ["-u", "postgres", "--"] + args) : run(args[0], Array(args.dropFirst()))
    }
}
