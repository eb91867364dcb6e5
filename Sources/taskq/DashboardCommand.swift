import ArgumentParser
import TaskQueue
import TaskQueueDashboard
#if canImport(Glibc)
import Glibc
#endif

struct DashboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve a live view of the queue in the browser, with Prometheus metrics at /metrics.",
        discussion: """
            Pages: overview (queues, chart of the last hour, supervisors and workers, latest \
            failures), tasks (by state, filters, payload and error search, retry / cancel / \
            purge), one task (payload, result, attempts), failures grouped by kind and error. \
            They update by themselves when the database changes, on SQLite and on PostgreSQL \
            (where it looks once a second while a page is open). JSON behind them: /api/status \
            (as 'status --json'), /api/tasks (as 'list --json'), /api/tasks/ID (as 'show --json'), \
            /api/failures. Prometheus text format at /metrics.

            Listens on 127.0.0.1:8080 unless told otherwise. Any other address needs \
            --token-file: every request must then carry the token (Authorization: Bearer \
            TOKEN, or sign in on the page). --read-only removes every action; --hide-payloads \
            shows neither payloads nor results. Stops on Ctrl-C (SIGINT) or SIGTERM.

            Examples:
              taskq dashboard
              taskq dashboard --listen 0.0.0.0:9000 --token-file /etc/taskq/token
              taskq dashboard --db backup.db --read-only
              curl -s localhost:8080/metrics

            Exit status: 0 stopped by a signal, 64 usage (e.g. a non-loopback address without \
            --token-file), 66 no such database, 69 the address cannot be listened on, or \
            (--read-only) a schema older than this taskq's.
            """)

    @OptionGroup var database: DatabaseOptions
    @Option(help: ArgumentHelp("Address and port to listen on (port 0: any free port).", valueName: "host:port"))
    var listen = "127.0.0.1:8080"
    @Option(name: .customLong("token-file"), help: ArgumentHelp(
        "File holding the token every request must present (a trailing newline is ignored). Required off loopback.", valueName: "path"))
    var tokenFile: String?
    @Flag(name: .customLong("read-only"), help: ArgumentHelp(
        "No actions, and no write at all: the database is opened read-only (every POST answers 403; an older schema is refused, not upgraded)."))
    var readOnly = false
    @Flag(name: .customLong("hide-payloads"), help: "Show neither payloads nor results.") var hidePayloads = false

    /// "host:port", "[v6]:port" or ":port".
    static func splitListen(_ text: String) throws -> (host: String, port: Int) {
        var host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080, not '\(text)'")
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080, not '\(text)'")
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard let p = Int(port), (0...65535).contains(p) else {
            throw ValidationError("--listen: the port must be a number from 0 to 65535, not '\(port)'")
        }
        return (host.isEmpty ? "127.0.0.1" : String(host), p)
    }

    static func isLoopback(_ host: String) -> Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }

    func validate() throws {
        let (host, _) = try Self.splitListen(listen)
        if !Self.isLoopback(host) && tokenFile == nil {
            throw ValidationError("--listen \(listen) is not a loopback address: give --token-file PATH with the token every request must present")
        }
    }

    func run() throws {
        let (host, port) = try Self.splitListen(listen)
        var options = DashboardOptions(database: database.path)
        options.host = host
        options.port = port
        options.readOnly = readOnly
        options.hidePayloads = hidePayloads
        options.version = TaskQueueVersion.current
        options.busyTimeout = database.busyTimeout
        if let tokenFile {
            let fd = open(tokenFile, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw TaskQueueError.usage("--token-file \(tokenFile): \(String(cString: strerror(errno)))")
            }
            var bytes: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                bytes += buf[0..<n]
            }
            close(fd)
            let token = try utf8(bytes, what: "--token-file \(tokenFile)").trimmingNewline
            guard token.count >= 8, !token.contains(where: { $0.isNewline || $0 == " " }) else {
                throw TaskQueueError.usage("--token-file \(tokenFile): the token must be one line of at least 8 characters without spaces")
            }
            options.token = token
        }
        let dashboard = try Dashboard(options: options)
        try dashboard.serve { url in
            out(url + "\n")
        }
    }
}
