import TaskQueue

/// Text for HTML: everything from the database goes through this, so a payload
/// of `<script>…` shows as text.
func escape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// A shell word, quoted when it needs to be, for the CLI commands pages show.
func shellWord(_ s: String) -> String {
    if !s.isEmpty, s.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic && $0.isASCII || "0123456789-_.:/=@%+,".unicodeScalars.contains($0) }) {
        return s
    }
    return "'" + s.replacing("'", with: "'\\''") + "'"
}

/// "3s", "4m 10s", "2h 5m", "3d 4h".
func age(_ seconds: Double) -> String {
    let s = Int(max(0, seconds))
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m \(s % 60)s" }
    if s < 86400 { return "\(s / 3600)h \(s % 3600 / 60)m" }
    return "\(s / 86400)d \(s % 86400 / 3600)h"
}

func number(_ n: Int64) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

extension Dashboard {
    /// The whole page around `body`: navigation, the live indicator, the CSRF
    /// token for scripts, the stylesheet and script (separate files: the CSP
    /// allows no inline script or style).
    func layout(_ title: String, nav: String, _ body: String, signedIn: Bool = true) -> String {
        let links = [("/", "Overview"), ("/tasks", "Tasks"), ("/failures", "Failures"), ("/schedules", "Schedules"), ("/maps", "Map groups")]
        let navHTML = signedIn ? links.map { href, name in
            "<a href=\"\(href)\"\(nav == href ? " class=\"active\" aria-current=\"page\"" : "")>\(name)</a>"
        }.joined() : ""
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title)) · taskq</title>
            <link rel="stylesheet" href="/static/app.css">
            <script src="/static/app.js" defer></script>
            </head><body\(options.readOnly ? " class=\"read-only\"" : "")>
            <header><span class="brand">taskq</span><nav>\(navHTML)</nav>
            <span class="db" title="database">\(escape(queue.location))\(options.readOnly ? " · read-only" : "")</span>
            \(signedIn ? "<button type=\"button\" id=\"live\" class=\"live\" aria-pressed=\"true\">live</button>" : "")
            </header>
            <main id="main">
            \(body)
            </main>
            </body></html>

            """
    }

    /// The CLI command (and SQL) that gives the same answer as a view.
    func cliBox(_ commands: [String], sql: String? = nil) -> String {
        var s = "<details class=\"cli\"><summary>Same answer from the shell</summary><pre>"
        s += commands.map { "$ " + escape($0) }.joined(separator: "\n")
        if let sql, showsSQL { s += "\n\n$ sqlite3 " + escape(shellWord(queue.location)) + "\nsqlite> " + escape(sql) + ";" }
        return s + "</pre></details>"
    }

    /// A POST form with the CSRF token, for one action; nothing in read-only mode.
    func actionForm(_ action: String, label: String, fields: [(String, String)], back: String, cssClass: String = "") -> String {
        if options.readOnly { return "" }
        var s = "<form method=\"post\" action=\"/actions\" class=\"inline\">"
        s += hidden("csrf", csrfToken) + hidden("action", action) + hidden("back", back)
        for (k, v) in fields { s += hidden(k, v) }
        return s + "<button type=\"submit\" class=\"\(cssClass)\">\(escape(label))</button></form>"
    }

    /// Shown while the first pass over the table runs; the page updates when it ends.
    var counting: String {
        "<p class=\"notice counting\">Counting finished tasks (a first pass over the table); this page updates when it is done.</p>"
    }

    func hidden(_ name: String, _ value: String) -> String {
        "<input type=\"hidden\" name=\"\(escape(name))\" value=\"\(escape(value))\">"
    }

    /// The database's own path for the CLI lines, as `--db PATH`.
    var dbArgument: String { "--db " + shellWord(queue.location) }

    func stateBadge(_ s: TaskState) -> String { "<span class=\"state \(s.rawValue)\">\(s.rawValue)</span>" }
}
