import TaskQueue

extension Queue {
    /// Opens the queue in the PostgreSQL database `url` names (a libpq URI,
    /// `postgresql://user@host/db?…`, or key=value string; the tables live in the
    /// connection's current schema). With `create` (the default) a schema without
    /// taskq's tables gets them; without it, that is a `.notFound` error.
    public static func open(postgres url: String, create: Bool = true, busyTimeout: Double = 10) throws -> Queue {
        Queue(store: try PostgresTaskStore(url: url, create: create, busyTimeout: busyTimeout))
    }
}
