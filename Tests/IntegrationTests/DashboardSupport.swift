import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP answer as the tests read it.
struct HTTPAnswer: CustomStringConvertible {
    var status: Int
    /// Header names in lower case; repeated headers joined with "\n".
    var headers: [String: String]
    var body: String
    var description: String { "HTTP \(status)\n\(headers)\n\(body.prefix(2000))" }
}

/// Where a dashboard test's queue lives.
enum DashboardBackend: String, Sendable { case sqlite, postgres }

/// One test's queue: a scenario (directory, processes) and its database, the
/// scenario's SQLite file or a fresh PostgreSQL schema. Every `taskq` it runs
/// gets the database as `$TASKQ_DB`.
final class DashboardQueue {
    let s = Scenario("taskq-dash")
    let backend: DashboardBackend
    let db: String

    init(_ backend: DashboardBackend) {
        self.backend = backend
        db = backend == .sqlite ? s.db : PostgresServer.freshSchema()!
    }

    @discardableResult
    func taskq(_ args: [String], stdin: String? = nil) -> RunResult { s.taskq(args, stdin: stdin, env: ["TASKQ_DB": db]) }

    /// Enqueues one task and returns its id (fails the precondition on error).
    @discardableResult
    func enqueue(_ kind: String, _ payload: String = "null", _ extra: [String] = []) -> Int64 {
        let r = taskq(["enqueue", kind, payload] + extra)
        precondition(r.status == 0, "enqueue failed: \(r)")
        return Int64(r.out)!
    }

    /// One value (or rows, one per line) of a query, with sqlite3 or psql.
    func sql(_ query: String) -> String { backend == .sqlite ? s.sql(query) : PostgresServer.psql(db, query).out }

    /// Count of tasks (not sentinels) in `state`.
    func count(_ state: String) -> Int {
        Int(sql("SELECT count(*) FROM tasks WHERE state = '\(state)' AND kind <> 'taskq.stop'")) ?? -1
    }

    func dashboard(_ args: [String] = []) -> DashboardProcess? { DashboardProcess(s, db: db, args) }

    func close() { s.close() }
}

/// A `taskq dashboard` started for a scenario on a free loopback port.
final class DashboardProcess {
    let child: Child
    let port: Int

    /// On `db` (nil: the scenario's SQLite file).
    init?(_ s: Scenario, db: String? = nil, _ args: [String] = []) {
        let child = s.start(Harness.taskq, ["dashboard", "--db", db ?? s.db, "--listen", "127.0.0.1:0"] + args)
        self.child = child
        var port = 0
        _ = eventually(timeout: 30) {
            let out = child.stdoutSoFar
            guard let r = out.firstRange(of: "http://127.0.0.1:"), out.hasSuffix("\n") else { return false }
            port = Int(out[r.upperBound...].prefix { $0.isNumber }) ?? 0
            return port > 0
        }
        guard port > 0 else { return nil }
        self.port = port
    }

    func get(_ path: String, _ headers: [String: String] = [:]) -> HTTPAnswer {
        request("GET", path, headers: headers)
    }

    func post(_ path: String, form: [(String, String)], _ headers: [String: String] = [:]) -> HTTPAnswer {
        let body = form.map { "\(formEncode($0.0))=\(formEncode($0.1))" }.joined(separator: "&")
        var h = headers
        h["Content-Type"] = "application/x-www-form-urlencoded"
        return request("POST", path, headers: h, body: body)
    }

    /// One request on a fresh connection (Connection: close), read to the end.
    func request(_ method: String, _ path: String, headers: [String: String] = [:], body: String = "") -> HTTPAnswer {
        let fd = connectLoopback(port)
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\n"
        var h = headers
        if h["Host"] == nil { h["Host"] = "127.0.0.1:\(port)" }
        h["Connection"] = "close"
        h["Content-Length"] = String(body.utf8.count)
        for (k, v) in h { head += "\(k): \(v)\r\n" }
        sendAll(fd, head + "\r\n" + body)
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += buf[0..<n]
        }
        return parseAnswer(String(decoding: data, as: UTF8.self))
    }

    /// Opens `/events` and returns the socket, past the response head.
    func openEvents(_ headers: [String: String] = [:]) -> Int32 {
        let fd = connectLoopback(port)
        var head = "GET /events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        sendAll(fd, head + "\r\n")
        return fd
    }
}

/// Reads what has arrived on `fd` within `timeout` seconds.
func readAvailable(_ fd: Int32, timeout: Double) -> String {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 8192)
    if poll(&p, 1, Int32(timeout * 1000)) > 0 {
        let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
        if n > 0 { data += buf[0..<n] }
    }
    return String(decoding: data, as: UTF8.self)
}

private func connectLoopback(_ port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var tv = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    return fd
}

private func sendAll(_ fd: Int32, _ text: String) {
    let bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return }
        off += n
    }
}

private func parseAnswer(_ text: String) -> HTTPAnswer {
    guard let end = text.firstRange(of: "\r\n\r\n") else { return HTTPAnswer(status: 0, headers: [:], body: text) }
    let lines = text[..<end.lowerBound].split(separator: "\r\n")
    let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let k = line[..<colon].lowercased(), v = String(line[line.index(after: colon)...].drop { $0 == " " })
        headers[k] = headers[k].map { $0 + "\n" + v } ?? v
    }
    return HTTPAnswer(status: status, headers: headers, body: String(text[end.upperBound...]))
}

private func formEncode(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2d || b == 0x5f || b == 0x2e {
            out.unicodeScalars.append(Unicode.Scalar(b))
        } else {
            let hex = String(b, radix: 16, uppercase: true)
            out += "%" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return out
}

/// The value of the hidden CSRF field in a page.
func csrfToken(in page: String) -> String? {
    guard let r = page.firstRange(of: "name=\"csrf\" value=\"") else { return nil }
    return String(page[r.upperBound...].prefix { $0 != "\"" })
}
