#if canImport(Glibc)
import Glibc
#endif
import TaskQueue

/// One HTTP request, as the server read it.
package struct HTTPRequest: Sendable {
    package var method: String
    /// The path without the query, percent-decoded.
    package var path: String
    package var query: [(String, String)]
    /// Header names in lower case.
    package var headers: [String: String]
    package var body: [UInt8]

    package func header(_ name: String) -> String? { headers[name] }
    package func queryValue(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
    /// The fields of an `application/x-www-form-urlencoded` body.
    package var form: [(String, String)] { parseQuery(String(decoding: body, as: UTF8.self)) }
    package func cookie(_ name: String) -> String? {
        for part in (headers["cookie"] ?? "").split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingSpaces == name { return String(kv[1].trimmingSpaces) }
        }
        return nil
    }
}

/// What a handler answers: a whole body, or a stream (Server-Sent Events) that
/// writes until the client goes or the server stops.
package struct HTTPResponse {
    package var status: Int
    package var headers: [(String, String)]
    package var body: [UInt8]
    /// Writes chunks through the function it is given, which returns false once
    /// the client is gone; the connection closes when it returns.
    package var stream: (((String) -> Bool) -> Void)?

    package init(status: Int, headers: [(String, String)] = [], body: [UInt8] = [], stream: (((String) -> Bool) -> Void)? = nil) {
        self.status = status; self.headers = headers; self.body = body; self.stream = stream
    }
    package init(status: Int, contentType: String, _ text: String, headers: [(String, String)] = []) {
        self.init(status: status, headers: [("Content-Type", contentType)] + headers, body: Array(text.utf8))
    }
}

/// A small HTTP/1.1 server over POSIX sockets: one thread per connection (at
/// most `maxConnections`), keep-alive, bodies up to 1 MiB, no TLS. Enough for a
/// dashboard that a few people open at a time, with no dependency and no
/// Foundation in the `taskq` binary.
package final class HTTPServer {
    private let listenFD: Int32
    private let handler: (HTTPRequest) -> HTTPResponse
    private let lock = Mutex()
    private var connections = 0
    private var stopping = false
    package let maxConnections = 64
    /// The port it listens on (the one the kernel chose when asked for 0).
    package let port: Int

    /// Binds `host:port` (a name or a numeric IPv4/IPv6 address).
    package init(host: String, port: Int, handler: @escaping (HTTPRequest) -> HTTPResponse) throws {
        self.handler = handler
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let ai = res else {
            throw TaskQueueError.usage("--listen: cannot resolve '\(host)': \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TaskQueueError.unavailable("cannot open a socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, listen(fd, 64) == 0 else {
            let e = errno
            close(fd)
            throw TaskQueueError.unavailable("cannot listen on \(host):\(port): \(String(cString: strerror(e)))")
        }
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let family = Int32(addr.ss_family)
        let bound = withUnsafePointer(to: &addr) { p -> UInt16 in
            if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
        }
        self.port = Int(UInt16(bigEndian: bound))
        listenFD = fd
    }

    /// Accepts connections on a thread of its own until `stop`.
    package func start() {
        spawnThread { [self] in
            while true {
                // (accept4 is not in Swift's Glibc module; this process starts no children.)
                let c = accept(listenFD, nil, nil)
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    if lock.locked({ stopping }) { return }
                    if errno == EMFILE || errno == ENFILE { usleep(100_000); continue }
                    return
                }
                _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                let admitted = lock.locked { () -> Bool in
                    if stopping || connections >= maxConnections { return false }
                    connections += 1
                    return true
                }
                guard admitted else {
                    send(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    close(c)
                    continue
                }
                spawnThread { [self] in
                    serve(c)
                    close(c)
                    lock.locked { connections -= 1 }
                }
            }
        }
    }

    /// Stops accepting; open streams end when they next look (`isStopping`).
    package func stop() {
        lock.locked { stopping = true }
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }

    package var isStopping: Bool { lock.locked { stopping } }

    private func serve(_ fd: Int32) {
        // A client that sends nothing for 30 s is dropped.
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        while !isStopping {
            guard let (request, rest) = readRequest(fd, &buffer) else { return }
            buffer = rest
            guard let request else {
                send(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            }
            let response = handler(request)
            let close = request.header("connection")?.lowercased() == "close" || response.stream != nil
            var head = "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
            for (k, v) in response.headers { head += "\(k): \(v)\r\n" }
            if let stream = response.stream {
                head += "Connection: close\r\n\r\n"
                guard send(fd, head) else { return }
                stream { chunk in send(fd, chunk) }
                return
            }
            head += "Content-Length: \(response.body.count)\r\n"
            head += close ? "Connection: close\r\n\r\n" : "\r\n"
            guard send(fd, head), request.method == "HEAD" || sendBytes(fd, response.body) else { return }
            if close { return }
        }
    }

    /// Reads one request from `fd` (after what is left in `buffer`). nil: the
    /// connection ended; `.some(nil)`: a request that cannot be parsed.
    private func readRequest(_ fd: Int32, _ buffer: inout [UInt8]) -> (HTTPRequest?, [UInt8])? {
        var chunk = [UInt8](repeating: 0, count: 16384)
        var headerEnd: Int?
        while true {
            if let i = findHeaderEnd(buffer) { headerEnd = i; break }
            if buffer.count > 32768 { return (nil, []) }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
        let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let start = lines.removeFirst().split(separator: " ")
        guard start.count == 3 else { return (nil, []) }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return (nil, []) }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].trimmingSpaces)
        }
        var rest = Array(buffer[(headerEnd! + 4)...])
        if headers["transfer-encoding"] != nil { return (nil, []) }
        let length = Int(headers["content-length"] ?? "0") ?? -1
        guard length >= 0, length <= 1 << 20 else { return (nil, []) }
        while rest.count < length {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            rest += chunk[0..<n]
        }
        let target = String(start[1])
        let q = target.firstIndex(of: "?")
        let request = HTTPRequest(method: String(start[0]), path: percentDecode(String(target[..<(q ?? target.endIndex)])),
                                  query: q.map { parseQuery(String(target[target.index(after: $0)...])) } ?? [],
                                  headers: headers, body: Array(rest[0..<length]))
        return (request, Array(rest[length...]))
    }
}

private func findHeaderEnd(_ b: [UInt8]) -> Int? {
    guard b.count >= 4 else { return nil }
    for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
    return nil
}

@discardableResult
private func send(_ fd: Int32, _ text: String) -> Bool { sendBytes(fd, Array(text.utf8)) }

/// Writes all of `bytes`; false once the peer is gone (MSG_NOSIGNAL: no SIGPIPE).
private func sendBytes(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
        if n < 0 { if errno == EINTR { continue }; return false }
        off += n
    }
    return true
}

private func reason(_ status: Int) -> String {
    switch status {
    case 200: return "OK"
    case 303: return "See Other"
    case 304: return "Not Modified"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 421: return "Misdirected Request"
    case 500: return "Internal Server Error"
    case 503: return "Service Unavailable"
    default: return "Status"
    }
}

/// `a=1&b=x%20y` as pairs, `+` as a space.
package func parseQuery(_ s: String) -> [(String, String)] {
    s.split(separator: "&").map { part in
        let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let key = percentDecode(String(kv[0]).replacingPlus)
        return (key, kv.count > 1 ? percentDecode(String(kv[1]).replacingPlus) : "")
    }
}

package func percentDecode(_ s: String) -> String {
    var out: [UInt8] = []
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if b == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
            out.append(v)
            it = it.dropFirst(2)
        } else {
            out.append(b)
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Percent-encodes a query value.
package func percentEncode(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let hex = String(b, radix: 16, uppercase: true)
            out += "%" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return out
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        let s = self[...].drop { $0 == " " || $0 == "\t" }
        var end = s.endIndex
        while end > s.startIndex, s[s.index(before: end)] == " " || s[s.index(before: end)] == "\t" { end = s.index(before: end) }
        return Substring(s[s.startIndex..<end])
    }
}

extension String {
    var replacingPlus: String { String(map { $0 == "+" ? " " : $0 }) }
}

/// A pthread mutex (heap-allocated: a condition variable needs its address to stay put).
package final class Mutex: @unchecked Sendable {
    let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    package init() { pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    package func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

private final class ThreadBody { let run: () -> Void; init(_ run: @escaping () -> Void) { self.run = run } }

/// Runs `body` on a new detached thread.
package func spawnThread(_ body: @escaping () -> Void) {
    var tid = pthread_t()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let arg = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&tid, &attr, { p in
        let b = Unmanaged<ThreadBody>.fromOpaque(p!).takeRetainedValue()
        b.run()
        return nil
    }, arg)
    pthread_attr_destroy(&attr)
    if rc != 0 { Unmanaged<ThreadBody>.fromOpaque(arg).release() }
}
