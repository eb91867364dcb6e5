import TaskQueue

// A role without the privileges taskq needs: PostgreSQL names the object it was
// refused ("permission denied for table tasks"), not the privilege. The server is
// asked which of those taskq needs on it the role lacks, so the one-line error says
// what to grant.

extension PostgresTaskStore {
    /// The privileges taskq needs, per kind of object PostgreSQL's message names, and
    /// the function that checks them.
    private static let needed: [String: (check: String, privileges: [String])] = [
        "schema": ("has_schema_privilege", ["USAGE", "CREATE"]),
        "table": ("has_table_privilege", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
        "view": ("has_table_privilege", ["SELECT"]),
        "sequence": ("has_sequence_privilege", ["USAGE", "SELECT", "UPDATE"]),
    ]

    /// `e`, and when it is a refused privilege (SQLSTATE 42501), its message followed
    /// by what the role lacks: `permission denied for table tasks (role app lacks
    /// INSERT, UPDATE, DELETE on it)`. Asked only on an idle connection (the
    /// transaction that failed is rolled back by then); `e` as it was when the server
    /// cannot tell.
    func explained(_ e: PostgresError) -> PostgresError {
        let prefix = "permission denied for "
        guard e.sqlstate == "42501", e.message.hasPrefix(prefix), db.isIdle else { return e }
        let words = e.message.dropFirst(prefix.count).split(separator: " ", maxSplits: 1).map(String.init)
        guard words.count == 2, let need = Self.needed[words[0]] else { return e }
        let columns = need.privileges.map { "\(need.check)($1, '\($0)')" }.joined(separator: ", ")
        guard let r = try? db.exec("SELECT current_user::text, \(columns)", [.text(words[1])]), r.count == 1 else { return e }
        let missing = need.privileges.indices.filter { !r.bool(0, $0 + 1) }.map { need.privileges[$0] }
        if missing.isEmpty { return e }
        return PostgresError(sqlstate: e.sqlstate,
                             message: "\(e.message) (role \(r.string(0, 0)) lacks \(missing.joined(separator: ", ")) on it)",
                             statement: e.statement)
    }
}
