// `taskq dashboard` on a PostgreSQL database: the same checks as on SQLite
// (`DashboardChecks`), each in a fresh schema on the test server (PostgresServer),
// reported as skipped, with the reason, when there is none.

import Testing
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.enabled(if: PostgresServer.url != nil, Comment(rawValue: PostgresServer.skipReason)))
struct DashboardPostgresTests {
    @Test func apisPrintTheSameJSONAsTheCLI() throws { try DashboardChecks.apis(.postgres) }
    @Test func overviewCountsAreStatusCounts() throws { try DashboardChecks.overviewCounts(.postgres) }
    @Test func metricsAreValidPrometheusTextFromTheRows() throws { try DashboardChecks.metrics(.postgres) }
    @Test func retryFromThePageChangesTheRow() throws { try DashboardChecks.actions(.postgres) }
    @Test func readOnlyHasNoActionAndHidePayloadsShowsNone() throws { try DashboardChecks.readOnly(.postgres) }
    /// Producers notify only a waiting worker and finishes never do: the probe sees them.
    @Test func theEventStreamSaysWithinTwoSecondsWhenTheDatabaseChanges() throws {
        try DashboardChecks.events(.postgres, within: 2)
    }
    @Test func schedulesAndMapGroups() throws { try DashboardChecks.schedulesAndMaps(.postgres) }

    /// Every row of the schema's tables, as one hash.
    private func fingerprint(_ q: DashboardQueue) -> String {
        q.sql("""
            SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
                SELECT t::text AS x FROM tasks t UNION ALL SELECT a::text FROM task_attempts a
                UNION ALL SELECT p::text FROM processes p UNION ALL SELECT q::text FROM queues q
                UNION ALL SELECT s::text FROM schedules s UNION ALL SELECT m::text FROM taskq_migrations m) rows
            """)
    }

    @Test func readOnlyChangesNothingAndRefusesAnOlderSchema() throws {
        let (q, failed, _) = DashboardChecks.seeded(.postgres)
        defer { q.close() }
        let before = fingerprint(q)
        try DashboardChecks.browseReadOnly(q, failed: failed)
        #expect(fingerprint(q) == before)
        // A schema one version behind is refused, not upgraded.
        q.sql("DELETE FROM taskq_migrations WHERE version = (SELECT max(version) FROM taskq_migrations)")
        let versions = q.sql("SELECT count(*) FROM taskq_migrations")
        let old = q.taskq(["dashboard", "--read-only", "--listen", "127.0.0.1:0"])
        #expect(old.status == 69 && old.stderr.contains("older than this taskq") && old.stderr.split(separator: "\n").count == 1, "\(old)")
        #expect(q.sql("SELECT count(*) FROM taskq_migrations") == versions, "not migrated")
    }
}
