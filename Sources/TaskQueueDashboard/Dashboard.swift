#if canImport(Glibc)
import Glibc
#endif
import TaskQueueStores

/// How `taskq dashboard` was started.
package struct DashboardOptions: Sendable {
    package var database: String
    package var host = "127.0.0.1"
    package var port = 8080
    /// Required by every request when set (Bearer header or the login cookie).
    package var token: String?
    /// No actions: no buttons, every POST but the login answers 403.
    package var readOnly = false
    /// Neither payloads nor results are shown or served.
    package var hidePayloads = false
    package var version = ""
    package var busyTimeout = 10.0
    package init(database: String) { self.database = database }
}

/// The dashboard: routes requests to pages, APIs, the event stream and
/// `/metrics`, with the safety rules in front (token, host, same origin, CSRF).
/// Database reads and actions go through one connection, one request at a time,
/// each in its own short transaction. Any store taskq opens serves it: the reads
/// it needs beyond `TaskStore` are `DashboardStore`'s.
package final class Dashboard: @unchecked Sendable {
    package let options: DashboardOptions
    let queue: Queue
    let store: any DashboardStore
    let feed = ChangeFeed()
    let aggregator = Aggregator()
    private let dbLock = Mutex()
    /// Put in every form; an action without it is refused.
    let csrfToken = randomHex(16)
    /// The login cookie's value: valid until this process ends.
    private let session = randomHex(24)

    package init(options: DashboardOptions) throws {
        self.options = options
        store = try Self.openStore(options, readOnly: options.readOnly)
        queue = Queue(store: store)
    }

    /// A connection of its own to the database; with `readOnly` it cannot write
    /// (and does not migrate).
    static func openStore(_ options: DashboardOptions, readOnly: Bool) throws -> any DashboardStore {
        let store = try Stores.openStore(options.database, create: false, busyTimeout: options.busyTimeout, role: .service,
                                         readOnly: readOnly)
        guard let s = store as? any DashboardStore else {
            throw TaskQueueError.unavailable("\(store.location): this store has no dashboard")
        }
        return s
    }

    /// True on PostgreSQL: the SQL beside a view is SQLite's, and is not shown.
    var showsSQL: Bool { !Stores.isPostgres(options.database) }

    /// Runs `body` with the database to itself.
    func read<T>(_ body: () throws -> T) throws -> T { try dbLock.locked(body) }

    package func handle(_ r: HTTPRequest) -> HTTPResponse {
        var response = route(r)
        // What the action just done did, shown once on the page it returned to.
        if let done = r.queryValue("done"), response.status == 200,
           response.headers.contains(where: { $0 == ("Content-Type", "text/html; charset=utf-8") }) {
            let page = String(decoding: response.body, as: UTF8.self)
            response.body = Array(page.replacing("<main id=\"main\">\n", with: "<main id=\"main\">\n<p class=\"notice\">\(escape(done))</p>", maxReplacements: 1).utf8)
        }
        response.headers += securityHeaders
        return response
    }

    private let securityHeaders = [
        ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
        ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
    ]

    private func route(_ r: HTTPRequest) -> HTTPResponse {
        if options.token == nil && !isLoopbackHost(r.header("host")) {
            // Without a token only loopback names are answered: a page elsewhere
            // that points its own domain name at 127.0.0.1 gets nothing.
            return text(421, "this dashboard answers only to http://127.0.0.1 or localhost (start it with --token-file to serve other names)\n")
        }
        switch (r.method, r.path) {
        case ("GET", "/static/app.css"): return asset("text/css; charset=utf-8", Assets.css)
        case ("GET", "/static/app.js"): return asset("text/javascript; charset=utf-8", Assets.js)
        case ("GET", "/login"): return html(200, loginPage(error: nil))
        case ("POST", "/login"): return login(r)
        default: break
        }
        if let token = options.token, !authorized(r, token: token) {
            if r.path.hasPrefix("/api/") || r.path == "/metrics" || r.path == "/events" || r.method != "GET" {
                return HTTPResponse(status: 401, contentType: "text/plain; charset=utf-8", "a token is required: Authorization: Bearer TOKEN\n",
                                    headers: [("WWW-Authenticate", "Bearer")])
            }
            return html(401, loginPage(error: nil))
        }
        feed.touch()
        if r.method == "POST" { return act(r) }
        guard r.method == "GET" || r.method == "HEAD" else { return text(405, "method not allowed\n") }
        do {
            switch r.path {
            case "/": return html(200, try overviewPage())
            case "/tasks": return html(200, try tasksPage(r))
            case "/tasks/confirm": return html(200, try confirmPage(r))
            case "/failures": return html(200, try failuresPage())
            case "/schedules": return html(200, try schedulesPage())
            case "/maps": return html(200, try mapsPage())
            case "/api/schedules": return json(try schedulesJSON())
            case "/api/maps": return json(try mapsJSON())
            case "/metrics": return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", try metricsText())
            case "/events": return events(r)
            case "/api/status": return json(try statusJSON())
            case "/api/tasks": return json(try tasksJSON(r))
            case "/api/failures": return json(try failuresJSON())
            default:
                if let id = taskID(r.path, prefix: "/tasks/") { return try taskPage(id) }
                if let id = taskID(r.path, prefix: "/api/tasks/") { return try taskJSON(id) }
                if r.path.hasPrefix("/tasks/"), r.path.hasSuffix("/result"),
                   let id = taskID(String(r.path.dropLast(7)), prefix: "/tasks/") { return try rawResult(id) }
                return html(404, layout("Not found", nav: "", "<p>No such page.</p>"))
            }
        } catch let e as TaskQueueError {
            return html(e.exitCode == 66 ? 404 : 500, layout("Error", nav: "", "<p class=\"error\">\(escape(e.message))</p>"))
        } catch {
            return html(500, layout("Error", nav: "", "<p class=\"error\">\(escape(String(describing: error)))</p>"))
        }
    }

    private func taskID(_ path: String, prefix: String) -> Int64? {
        guard path.hasPrefix(prefix), let id = Int64(path.dropFirst(prefix.count)), id > 0 else { return nil }
        return id
    }

    // MARK: - safety

    private func authorized(_ r: HTTPRequest, token: String) -> Bool {
        if let auth = r.header("authorization"), auth.hasPrefix("Bearer ") {
            return constantTimeEqual(String(auth.dropFirst(7)), token)
        }
        return r.cookie("taskq_session").map { constantTimeEqual($0, session) } ?? false
    }

    /// A POST from one of the dashboard's own pages: the browser says so
    /// (Origin is this host, or Sec-Fetch-Site is same-origin) and the form
    /// carries the CSRF token.
    func sameOrigin(_ r: HTTPRequest) -> Bool {
        if let site = r.header("sec-fetch-site") { return site == "same-origin" }
        guard let origin = r.header("origin"), let host = r.header("host") else { return false }
        return origin == "http://" + host
    }

    private func login(_ r: HTTPRequest) -> HTTPResponse {
        guard let token = options.token else { return redirect("/") }
        guard sameOrigin(r) else { return text(403, "refused: the login form must come from this dashboard's own page\n") }
        let given = r.form.first { $0.0 == "token" }?.1 ?? ""
        guard constantTimeEqual(given.trimmingNewline, token) else { return html(401, loginPage(error: "That is not the token.")) }
        var response = redirect("/")
        response.headers.append(("Set-Cookie", "taskq_session=\(session); Path=/; HttpOnly; SameSite=Strict"))
        return response
    }

    private func loginPage(error: String?) -> String {
        layout("Sign in", nav: "", """
            <form method="post" action="/login" class="login">
            <p>This dashboard needs its token (the contents of the file given to <code>--token-file</code>).</p>
            \(error.map { "<p class=\"error\">\(escape($0))</p>" } ?? "")
            <label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
            <button type="submit">Sign in</button></form>
            """, signedIn: false)
    }

    // MARK: - live updates

    /// Server-Sent Events: "change" whenever the database changed (coalesced),
    /// a comment every 15 s to keep proxies from closing an idle stream.
    private func events(_ r: HTTPRequest) -> HTTPResponse {
        let feed = self.feed
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-store")]) { write in
            var seen = feed.currentEvent
            feed.stream(true)
            defer { feed.stream(false) }
            guard write("retry: 1000\n\n") else { return }
            while let v = feed.wait(after: seen, timeout: 15, events: true) {
                if v == seen { if !write(": idle\n\n") { return }; continue }
                seen = v
                if !write("event: change\ndata: \(v)\n\n") { return }
            }
        }
    }

    // MARK: - responses

    func html(_ status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/html; charset=utf-8", body, headers: [("Cache-Control", "no-store")])
    }
    func text(_ status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body)
    }
    func json(_ body: String) -> HTTPResponse {
        HTTPResponse(status: 200, contentType: "application/json", body + "\n", headers: [("Cache-Control", "no-store")])
    }
    func redirect(_ to: String) -> HTTPResponse { HTTPResponse(status: 303, headers: [("Location", to)]) }
    private func asset(_ type: String, _ body: String) -> HTTPResponse {
        HTTPResponse(status: 200, contentType: type, body, headers: [("Cache-Control", "max-age=300")])
    }
}

/// True for a Host header naming this machine's loopback (any port).
func isLoopbackHost(_ host: String?) -> Bool {
    guard let host else { return false }
    var name = host
    if name.hasPrefix("[") { name = String(name.dropFirst().prefix { $0 != "]" }) } else if let c = name.lastIndex(of: ":") {
        name = String(name[..<c])
    }
    return name == "localhost" || name == "::1" || name.hasPrefix("127.")
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<min(x.count, y.count) { diff |= x[i] ^ y[i] }
    return diff == 0
}

/// `n` random bytes from the kernel, as hex.
func randomHex(_ n: Int) -> String {
    var bytes = [UInt8](repeating: 0, count: n)
    let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    var got = 0
    while fd >= 0 && got < n {
        let r = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, n - got) }
        if r > 0 { got += r } else if r == 0 || errno != EINTR { break }
    }
    if fd >= 0 { close(fd) }
    precondition(got == n, "cannot read /dev/urandom")
    return bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

extension String {
    /// Without one trailing newline (a token file's).
    package var trimmingNewline: String {
        // By scalars: "\r\n" is a single Character.
        var s = unicodeScalars[...]
        if s.last == "\n" { s = s.dropLast() }
        if s.last == "\r" { s = s.dropLast() }
        return String(String.UnicodeScalarView(s))
    }
}
