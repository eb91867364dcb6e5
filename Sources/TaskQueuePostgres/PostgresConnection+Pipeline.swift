import CLibPQ

// Fewer round trips. A commit on a local server takes a tenth of a millisecond or
// two; a transaction sent statement by statement waits that long again for each
// of its statements' replies, and the server parses and plans each one anew.
// Prepared statements are parsed once per connection; a pipeline sends a whole
// transaction's statements at once and reads their replies together, so an
// enqueue is one round trip, as a bare INSERT is.

/// A pipeline `send` has sent, whose replies `collect` reads.
struct SentPipeline {
    fileprivate let statements: [PGStatement]
    /// What each reply answers (see `send`).
    fileprivate let replies: [(statement: Int, prepare: (key: String, name: String)?)]
    fileprivate let commits: Bool
    /// Without pipeline mode the statements ran at once: how that went.
    fileprivate let ran: (results: [PGResult?], failure: PostgresError?)?
}

/// A statement and its parameters, one step of a `pipeline`.
struct PGStatement {
    var sql: String
    var params: [PGValue] = []

    static let begin = PGStatement(sql: "BEGIN")
    static let commit = PGStatement(sql: "COMMIT")
}

extension PostgresConnection {
    /// Runs `sql` as a statement prepared on this connection: parsed once, then
    /// only bound and run. For the statements a process runs over and over.
    @discardableResult
    func execPrepared(_ sql: String, _ params: [PGValue] = []) throws -> PGResult {
        let (key, name) = preparedName(sql, params)
        if prepared[key] == nil {
            let types = params.map(\.oid)
            _ = try check(PQprepare(handle, name, sql, Int32(types.count), types), sql)
            prepared[key] = name
        }
        return try check(Self.withWire(params) { w in
            PQexecPrepared(handle, name, w.count, w.values, w.lengths, w.formats, 1)
        }, sql)
    }

    /// Runs `statements` in order, in one round trip (libpq's pipeline mode), each
    /// as a prepared statement; returns their results. Outside a transaction they
    /// are one transaction, committed once the last has run (rolled back if any
    /// fails); inside one (after BEGIN), they are part of it. The first failure is
    /// thrown, and the statements after it do not run.
    @discardableResult
    func pipeline(_ statements: [PGStatement]) throws -> [PGResult] {
        let (results, failure) = collect(try send(statements))
        if let failure { throw failure }
        return results.map { $0! }
    }

    /// Sends `statements` as a pipeline and returns without waiting for the
    /// server: the caller may do other work (not on this connection) while they
    /// run, then `collect`s their replies. Without pipeline mode they run here.
    func send(_ statements: [PGStatement]) throws -> SentPipeline {
        guard taskq_libpq_has_pipeline() == 1 else {
            return SentPipeline(statements: statements, replies: [], commits: false, ran: try oneByOneUntilFailure(statements))
        }
        // One that ends a transaction, or is one itself (outside a transaction and not
        // opening one), commits: the tests' COMMIT faults apply to it.
        let commits = statements.last?.sql == PGStatement.commit.sql
            || (isIdle && statements.first?.sql.hasPrefix("BEGIN") != true)
        if commits && commitFault == .beforeSending { commitFault = nil; cut() }
        guard PQenterPipelineMode(handle) == 1 else { throw error(nil, statements.first?.sql ?? "") }
        // What each reply answers: a statement's Parse the first time (nil), then its run.
        var replies: [(statement: Int, prepare: (key: String, name: String)?)] = []
        var preparing: [String: String] = [:]
        var sendFailed = false
        for (i, s) in statements.enumerated() {
            var (key, name) = preparedName(s.sql, s.params)
            if prepared[key] == nil, let earlier = preparing[key] { name = earlier }
            else if prepared[key] == nil {
                let types = s.params.map(\.oid)
                if PQsendPrepare(handle, name, s.sql, Int32(types.count), types) != 1 { sendFailed = true; break }
                preparing[key] = name
                replies.append((i, (key, name)))
            }
            let sent = Self.withWire(s.params) { w in
                PQsendQueryPrepared(handle, name, w.count, w.values, w.lengths, w.formats, 1)
            }
            if sent != 1 { sendFailed = true; break }
            replies.append((i, nil))
        }
        if sendFailed || PQpipelineSync(handle) != 1 {
            let e = error(nil, statements.first?.sql ?? "")
            // What was queued is sent with a Sync (the replies then end), or the
            // connection is gone (they never come): either way nothing waits forever.
            if !sendFailed || PQpipelineSync(handle) == 1 || isBroken { drainPipeline() }
            leavePipeline()
            throw e
        }
        return SentPipeline(statements: statements, replies: replies, commits: commits, ran: nil)
    }

    /// Reads the replies of a pipeline `send` sent, reporting how far it got: the
    /// results of the statements that ran (nil from the first that did not) and the
    /// failure that stopped the rest, a refused statement or the lost connection
    /// (whose statements after the last reply read may or may not have run). For
    /// several transactions in one pipeline, each BEGIN … COMMIT: those whose COMMIT
    /// has a result are committed.
    func collect(_ sent: SentPipeline) -> (results: [PGResult?], failure: PostgresError?) {
        if let ran = sent.ran { return ran }
        defer { leavePipeline() }
        let statements = sent.statements, replies = sent.replies
        var results: [PGResult?] = Array(repeating: nil, count: statements.count)
        var failure: PostgresError?
        var next = 0
        var nulls = 0
        while true {
            guard let r = PQgetResult(handle) else {
                // One NULL ends each statement's replies; two in a row: nothing more comes.
                nulls += 1
                if nulls >= 2 || isBroken { break }
                continue
            }
            nulls = 0
            let status = PQresultStatus(r)
            if status == PGRES_PIPELINE_SYNC { PQclear(r); break }
            let reply = next < replies.count ? replies[next] : nil
            next += 1
            switch status {
            case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
                if let reply, let p = reply.prepare { prepared[p.key] = p.name; PQclear(r) }
                else if let reply { results[reply.statement] = PGResult(r) } else { PQclear(r) }
            case PGRES_PIPELINE_ABORTED:
                PQclear(r)
            default:
                // Past the last statement: the commit at the end failed.
                if failure == nil { failure = error(r, reply.map { statements[$0.statement].sql } ?? "COMMIT") }
                PQclear(r)
            }
        }
        if let failure { return (results, failure) }
        guard next >= replies.count, !isBroken else { return (results, error(nil, statements.last?.sql ?? "")) }
        if sent.commits && commitFault == .afterCommitting {
            commitFault = nil
            cut()
            results[results.count - 1] = nil   // the reply that was "lost"
            return (results,
                    PostgresError(sqlstate: "08006", message: "server closed the connection unexpectedly", statement: "COMMIT"))
        }
        return (results, nil)
    }

    /// Leaves pipeline mode, which needs every reply read: after a failure, reads what is left.
    private func leavePipeline() {
        if PQexitPipelineMode(handle) != 1 { drainPipeline(); _ = PQexitPipelineMode(handle) }
    }

    /// Without pipeline mode (libpq 13 and older): `send` and `collect` at once, a
    /// round trip per statement.
    private func oneByOneUntilFailure(_ statements: [PGStatement]) throws -> (results: [PGResult?], failure: PostgresError?) {
        // Statements that open a transaction, or run in one, are left to it.
        let opens = statements.first?.sql.hasPrefix("BEGIN") == true
        let wrap = isIdle && !opens
        if wrap { try run(script: "BEGIN") }
        var results: [PGResult?] = Array(repeating: nil, count: statements.count)
        do {
            for (i, s) in statements.enumerated() { results[i] = try execPrepared(s.sql, s.params) }
            if wrap { try run(script: "COMMIT") }
            return (results, nil)
        } catch let e as PostgresError {
            if (wrap || opens) && !isIdle && !isBroken { _ = PQexec(handle, "ROLLBACK").map { PQclear($0) } }
            // Wrapped, nothing committed: no statement's result stands.
            return (wrap ? results.map { _ in nil } : results, e)
        }
    }

    /// Reads and drops whatever the server still sends for an interrupted pipeline.
    private func drainPipeline() {
        var nulls = 0
        while nulls < 2 && !isBroken {
            guard let r = PQgetResult(handle) else { nulls += 1; continue }
            nulls = 0
            let done = PQresultStatus(r) == PGRES_PIPELINE_SYNC
            PQclear(r)
            if done { break }
        }
    }

    /// The cache key of `sql` with these parameter types, and the name it has or gets.
    private func preparedName(_ sql: String, _ params: [PGValue]) -> (key: String, name: String) {
        var key = sql
        for p in params { key += ",\(p.oid)" }
        if let name = prepared[key] { return (key, name) }
        preparedCount += 1
        return (key, "taskq_\(preparedCount)")
    }
}
