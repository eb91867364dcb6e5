#if canImport(Glibc)
import Glibc
#endif

/// A time zone for cron schedules: UTC, or an IANA zone read from the system's
/// tz database (`$TZDIR`, default /usr/share/zoneinfo) in TZif format, its table
/// extended past its last transition by the POSIX TZ rule in the file's footer.
public struct CronTimeZone: Sendable, Equatable {
    /// The name given ("UTC", "Europe/Berlin").
    public let name: String
    /// UTC offset in seconds before the first transition.
    let initialOffset: Int
    /// (seconds since the epoch, UTC offset in seconds from then on), sorted.
    let transitions: [(at: Int64, offset: Int)]

    public static let utc = CronTimeZone(name: "UTC", initialOffset: 0, transitions: [])

    init(name: String, initialOffset: Int, transitions: [(at: Int64, offset: Int)]) {
        self.name = name; self.initialOffset = initialOffset; self.transitions = transitions
    }

    public static func == (a: CronTimeZone, b: CronTimeZone) -> Bool { a.name == b.name }

    /// Loads `name`: "UTC" (also "Etc/UTC", "Z"), or an IANA name like
    /// "Europe/Berlin". Throws a usage error for an unknown or malformed zone.
    public init(named name: String) throws {
        if name == "UTC" || name == "Z" || name == "Etc/UTC" || name == "Etc/UCT" {
            self = .utc
            if name != "UTC" { self = CronTimeZone(name: name, initialOffset: 0, transitions: []) }
            return
        }
        let ok = !name.isEmpty && !name.hasPrefix("/") && !name.contains("..") && name.utf8.count <= 200
            && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "/" || $0 == "_" || $0 == "-" || $0 == "+" }
        var dir = "/usr/share/zoneinfo"
        if let env = getenv("TZDIR"), env.pointee != 0 { dir = String(cString: env) }
        guard ok, let bytes = Self.readFile(dir + "/" + name) else {
            throw TaskQueueError.usage("unknown time zone \(JSON.quote(name)) (nothing at \(dir)/\(name)): use an IANA name like Europe/Berlin or America/New_York, or UTC")
        }
        guard let parsed = TZif.parse(bytes) else {
            throw TaskQueueError.usage("time zone \(JSON.quote(name)): \(dir)/\(name) is not a TZif file")
        }
        self.init(name: name, initialOffset: parsed.initial, transitions: parsed.transitions)
    }

    private static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG { return nil }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += buf[0..<n]
            if data.count > 1 << 20 { return nil }
        }
        return data
    }

    /// UTC offset in seconds at `t` (seconds since the epoch).
    public func offset(at t: Int64) -> Int { segment(containing: t).offset }

    /// The stretch of constant offset that holds `t`: [start, end).
    func segment(containing t: Int64) -> (start: Int64, end: Int64, offset: Int, previousOffset: Int?, nextOffset: Int?) {
        // Last transition at or before t.
        var lo = 0, hi = transitions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if transitions[mid].at <= t { lo = mid + 1 } else { hi = mid }
        }
        let i = lo - 1
        let end = lo < transitions.count ? transitions[lo].at : Int64.max
        let next = lo < transitions.count ? transitions[lo].offset : nil
        if i < 0 { return (Int64.min, end, initialOffset, nil, next) }
        return (transitions[i].at, end, transitions[i].offset, i > 0 ? transitions[i - 1].offset : initialOffset, next)
    }
}

/// The parts of RFC 8536 (TZif) that cron needs: transition times and offsets.
enum TZif {
    static func parse(_ b: [UInt8]) -> (initial: Int, transitions: [(at: Int64, offset: Int)])? {
        guard b.count >= 44, b[0] == 0x54, b[1] == 0x5A, b[2] == 0x69, b[3] == 0x66 else { return nil }
        func u32(_ at: Int) -> Int { Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3]) }
        func i32(_ at: Int) -> Int { Int(Int32(bitPattern: UInt32(u32(at)))) }
        func i64(_ at: Int) -> Int64 { Int64(bitPattern: UInt64(u32(at)) << 32 | UInt64(u32(at + 4))) }
        func counts(_ at: Int) -> (isut: Int, isstd: Int, leap: Int, time: Int, type: Int, char: Int) {
            (u32(at + 20), u32(at + 24), u32(at + 28), u32(at + 32), u32(at + 36), u32(at + 40))
        }
        var c = counts(0)
        var at = 44, timeSize = 4
        let version = b[4]
        if version >= 0x32 {
            // Skip the v1 block; use the 64-bit one that follows.
            at += c.time * 4 + c.time + c.type * 6 + c.char + c.leap * 8 + c.isstd + c.isut
            guard b.count >= at + 44 else { return nil }
            c = counts(at)
            at += 44
            timeSize = 8
        }
        let need = c.time * timeSize + c.time + c.type * 6 + c.char + c.leap * (timeSize + 4) + c.isstd + c.isut
        guard c.type >= 1, b.count >= at + need else { return nil }
        let timesAt = at, indexAt = at + c.time * timeSize, typesAt = indexAt + c.time
        var types: [Int] = []
        for k in 0..<c.type { types.append(i32(typesAt + k * 6)) }
        var transitions: [(at: Int64, offset: Int)] = []
        for k in 0..<c.time {
            let t = timeSize == 8 ? i64(timesAt + k * 8) : Int64(i32(timesAt + k * 4))
            let idx = Int(b[indexAt + k])
            guard idx < types.count else { return nil }
            transitions.append((t, types[idx]))
        }
        // Footer (v2+): "\n<POSIX TZ>\n" — extends the table to 2200.
        if timeSize == 8 {
            let footerAt = at + need
            if footerAt < b.count, b[footerAt] == 0x0A,
               let endNL = b[(footerAt + 1)...].firstIndex(of: 0x0A),
               let rule = PosixTZ(String(decoding: b[(footerAt + 1)..<endNL], as: UTF8.self)) {
                let last = transitions.last?.at ?? Int64.min
                let firstYear = last == Int64.min ? 1970 : CivilTime.civil(fromDays: CivilTime.divMod(last, 86_400).0).0
                var extra: [(at: Int64, offset: Int)] = []
                if rule.dst != nil {
                    for y in firstYear...2200 { extra += rule.transitions(year: y) }
                } else if transitions.isEmpty || transitions.last!.offset != rule.std {
                    extra.append((last == Int64.min ? Int64.min + 1 : last + 1, rule.std))
                }
                transitions += extra.filter { $0.at > last }.sorted { $0.at < $1.at }
            }
        }
        // Drop no-op transitions (the offset does not change): only changes matter to cron.
        var out: [(at: Int64, offset: Int)] = []
        var current = types[0]
        for t in transitions where t.offset != current {
            out.append(t); current = t.offset
        }
        return (types[0], out)
    }
}

/// A POSIX TZ string like "CET-1CEST,M3.5.0,M10.5.0/3" (as in TZif footers).
struct PosixTZ {
    var std: Int
    var dst: (offset: Int, start: Rule, end: Rule)?

    enum Kind { case julianNoLeap(Int), zeroBased(Int), monthWeekDay(Int, Int, Int) }
    struct Rule { var kind: Kind; var time: Int }

    init?(_ s: String) {
        var p = Substring(s)
        func name() -> Bool {
            if p.first == "<" {
                guard let close = p.firstIndex(of: ">") else { return false }
                p = p[p.index(after: close)...]
                return true
            }
            let n = p.prefix { $0.isLetter }
            if n.count < 3 { return false }
            p = p.dropFirst(n.count)
            return true
        }
        func number() -> Int? {
            let d = p.prefix { $0.isNumber }
            guard !d.isEmpty, let v = Int(d) else { return nil }
            p = p.dropFirst(d.count)
            return v
        }
        func hms() -> Int? {
            var sign = 1
            if p.first == "+" { p = p.dropFirst() } else if p.first == "-" { sign = -1; p = p.dropFirst() }
            guard let h = number() else { return nil }
            var total = h * 3600
            if p.first == ":" { p = p.dropFirst(); guard let m = number() else { return nil }; total += m * 60 }
            if p.first == ":" { p = p.dropFirst(); guard let sec = number() else { return nil }; total += sec }
            return sign * total
        }
        func rule() -> Rule? {
            var kind: Kind
            if p.first == "M" {
                p = p.dropFirst()
                guard let m = number(), p.first == "." else { return nil }
                p = p.dropFirst()
                guard let w = number(), p.first == "." else { return nil }
                p = p.dropFirst()
                guard let d = number(), (1...12).contains(m), (1...5).contains(w), (0...6).contains(d) else { return nil }
                kind = .monthWeekDay(m, w, d)
            } else if p.first == "J" {
                p = p.dropFirst()
                guard let n = number(), (1...365).contains(n) else { return nil }
                kind = .julianNoLeap(n)
            } else {
                guard let n = number(), (0...365).contains(n) else { return nil }
                kind = .zeroBased(n)
            }
            var time = 7200
            if p.first == "/" { p = p.dropFirst(); guard let t = hms() else { return nil }; time = t }
            return Rule(kind: kind, time: time)
        }
        guard name(), let stdOff = hms() else { return nil }
        std = -stdOff
        if p.isEmpty { dst = nil; return }
        guard name() else { return nil }
        var dstOffset = std + 3600
        if p.first != "," && !p.isEmpty { guard let o = hms() else { return nil }; dstOffset = -o }
        guard p.first == "," else { return nil }
        p = p.dropFirst()
        guard let start = rule(), p.first == "," else { return nil }
        p = p.dropFirst()
        guard let end = rule(), p.isEmpty else { return nil }
        dst = (dstOffset, start, end)
    }

    /// Days since the epoch of the rule's day in `year`.
    private func day(_ r: Rule, year: Int) -> Int64 {
        let jan1 = CivilTime.days(year, 1, 1)
        switch r.kind {
        case .zeroBased(let n): return jan1 + Int64(n)
        case .julianNoLeap(let n):
            return jan1 + Int64(n - 1) + (CivilTime.isLeap(year) && n >= 60 ? 1 : 0)
        case .monthWeekDay(let m, let w, let d):
            let first = CivilTime.days(year, m, 1)
            let wd1 = Int(CivilTime.divMod(first + 4, 7).1)
            var dom = 1 + (d - wd1 + 7) % 7 + (w - 1) * 7
            while dom > CivilTime.daysInMonth(year, m) { dom -= 7 }
            return first + Int64(dom - 1)
        }
    }

    /// The year's two changes, as (UTC instant, offset from then on).
    func transitions(year: Int) -> [(at: Int64, offset: Int)] {
        guard let dst else { return [] }
        let start = day(dst.start, year: year) * 86_400 + Int64(dst.start.time) - Int64(std)
        let end = day(dst.end, year: year) * 86_400 + Int64(dst.end.time) - Int64(dst.offset)
        return [(start, dst.offset), (end, std)].sorted { $0.0 < $1.0 }
    }
}
