// The byte-level scanner under `JSON.validate` and `JSON.parse`.

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Scanner

/// The byte-level validator/parser. `i` always indexes the next unread byte.
struct JSONScanner {
    let b: UnsafeRawBufferPointer
    let n: Int
    var i = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        b = bytes
        n = bytes.count
    }

    // MARK: errors

    func fail(_ offset: Int, _ message: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset, message: message)
    }

    var endOfInput: JSONSyntaxError { fail(n, "unexpected end of input") }

    /// "unexpected character 'x'; expected …" for the byte at `at` (or "invalid UTF-8"
    /// if it starts no valid sequence, or end of input when `at == n`).
    func unexpected(_ at: Int, expected: String) -> JSONSyntaxError {
        guard at < n else { return endOfInput }
        let c = b[at]
        let shown: String
        if c >= 0x80 {
            guard let scalar = decodeScalar(at) else { return fail(at, "invalid UTF-8") }
            shown = JSONScanner.codePoint(scalar.value)
        } else if c == 0x27 {
            shown = "\"'\""
        } else if c > 0x20 && c < 0x7F {
            shown = "'" + String(UnicodeScalar(c)) + "'"
        } else {
            shown = JSONScanner.codePoint(UInt32(c))
        }
        return fail(at, "unexpected character \(shown); expected \(expected)")
    }

    /// `error` with a hint when the input looks like a common mistake: single
    /// quotes, a bare word meant as a string, a key without quotes. Runs only on
    /// the error path.
    func withHint(_ error: JSONSyntaxError) -> JSONSyntaxError {
        var e = error
        func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }
        var lo = 0, hi = n
        while lo < hi && (b[lo] == 0x20 || b[lo] == 0x0A || b[lo] == 0x0D || b[lo] == 0x09) { lo += 1 }
        while hi > lo && (b[hi - 1] == 0x20 || b[hi - 1] == 0x0A || b[hi - 1] == 0x0D || b[hi - 1] == 0x09) { hi -= 1 }
        // Short, one-line text can be shown again, fixed.
        let showable = hi - lo <= 60 && !(lo..<hi).contains { b[$0] < 0x20 }
        if e.offset < n && b[e.offset] == 0x27 {
            if showable, hi - lo >= 2, e.offset == lo, b[hi - 1] == 0x27, !(lo + 1..<hi - 1).contains(where: { b[$0] == 0x27 || b[$0] == 0x22 }) {
                e.hint = "JSON needs double quotes: " + JSON.quote(String(decoding: UnsafeRawBufferPointer(rebasing: b[lo + 1..<hi - 1]), as: UTF8.self))
            } else {
                e.hint = "JSON needs double quotes"
            }
        } else if lo < hi && isLetter(b[lo]) {
            e.hint = showable
                ? "a JSON string needs double quotes: " + JSON.quote(String(decoding: UnsafeRawBufferPointer(rebasing: b[lo..<hi]), as: UTF8.self))
                : "a JSON string needs double quotes around it"
        } else if e.offset < n && isLetter(b[e.offset]) && e.message.hasSuffix("expected a string key") {
            e.hint = "JSON keys need double quotes, e.g. {\"key\": 1}"
        }
        return e
    }

    static func codePoint(_ v: UInt32) -> String {
        var h = String(v, radix: 16, uppercase: true)
        while h.utf8.count < 4 { h = "0" + h }
        return "U+" + h
    }

    /// Length of the valid UTF-8 sequence starting at `at` (a byte >= 0x80), or 0.
    @inline(__always)
    func utf8Length(_ at: Int) -> Int {
        let c0 = b[at]
        @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            at + k < n && b[at + k] >= lo && b[at + k] <= hi
        }
        switch c0 {
        case 0xC2...0xDF:
            return cont(1) ? 2 : 0
        case 0xE0:
            return cont(1, 0xA0) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return cont(1) && cont(2) ? 3 : 0
        case 0xED:
            return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
        case 0xF0:
            return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3:
            return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4:
            return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default:
            return 0
        }
    }

    func decodeScalar(_ at: Int) -> UnicodeScalar? {
        let len = utf8Length(at)
        guard len > 0 else { return nil }
        var v = UInt32(b[at]) & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07)
        for k in 1..<len { v = (v << 6) | (UInt32(b[at + k]) & 0x3F) }
        return UnicodeScalar(v)
    }

    // MARK: structure

    @inline(__always)
    mutating func skipWhitespace() {
        while i < n {
            let c = b[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
        }
    }

    /// Skips leading whitespace; throws "empty input" if nothing else is there.
    mutating func start() throws(JSONSyntaxError) {
        skipWhitespace()
        if i == n { throw fail(0, "empty input") }
    }

    /// Skips trailing whitespace; throws if anything else follows the value.
    mutating func finish() throws(JSONSyntaxError) {
        skipWhitespace()
        if i < n { throw fail(i, "trailing characters after the JSON value") }
    }

    /// Skips one value starting at `i` (no leading whitespace). `depth` is the number
    /// of enclosing arrays/objects.
    mutating func skipValue(depth: Int) throws(JSONSyntaxError) {
        guard i < n else { throw endOfInput }
        switch b[i] {
        case 0x22: _ = try scanString()
        case 0x7B: try skipObject(depth: depth + 1)
        case 0x5B: try skipArray(depth: depth + 1)
        case 0x74: try literal("true")
        case 0x66: try literal("false")
        case 0x6E: try literal("null")
        case 0x2D, 0x30...0x39: try scanNumber()
        default: throw unexpected(i, expected: "a value")
        }
    }

    @inline(__always)
    mutating func enter(depth: Int) throws(JSONSyntaxError) {
        if depth > JSON.maxDepth { throw fail(i, "nesting deeper than \(JSON.maxDepth) levels") }
        i += 1
        skipWhitespace()
    }

    /// After a ',' in a container: whitespace, then complain about a trailing comma.
    @inline(__always)
    mutating func afterComma(_ close: UInt8) throws(JSONSyntaxError) {
        i += 1
        skipWhitespace()
        if i < n && b[i] == close {
            throw fail(i, "trailing comma before '\(Character(UnicodeScalar(close)))'")
        }
    }

    mutating func skipArray(depth: Int) throws(JSONSyntaxError) {
        try enter(depth: depth)
        if i < n && b[i] == 0x5D { i += 1; return }
        while true {
            try skipValue(depth: depth)
            skipWhitespace()
            guard i < n else { throw endOfInput }
            switch b[i] {
            case 0x2C: try afterComma(0x5D)
            case 0x5D: i += 1; return
            default: throw unexpected(i, expected: "',' or ']'")
            }
        }
    }

    mutating func skipObject(depth: Int) throws(JSONSyntaxError) {
        try enter(depth: depth)
        if i < n && b[i] == 0x7D { i += 1; return }
        while true {
            try memberKey()
            _ = try scanString()
            try colon()
            try skipValue(depth: depth)
            skipWhitespace()
            guard i < n else { throw endOfInput }
            switch b[i] {
            case 0x2C: try afterComma(0x7D)
            case 0x7D: i += 1; return
            default: throw unexpected(i, expected: "',' or '}'")
            }
        }
    }

    @inline(__always)
    mutating func memberKey() throws(JSONSyntaxError) {
        guard i < n else { throw endOfInput }
        if b[i] != 0x22 { throw unexpected(i, expected: "a string key") }
    }

    @inline(__always)
    mutating func colon() throws(JSONSyntaxError) {
        skipWhitespace()
        guard i < n else { throw endOfInput }
        if b[i] != 0x3A { throw unexpected(i, expected: "':'") }
        i += 1
        skipWhitespace()
    }

    /// Matches the ASCII literal `word` (true, false or null) at `i`.
    mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let p = word.utf8Start
        let start = i
        for k in 0..<word.utf8CodeUnitCount {
            guard i < n else { throw endOfInput }
            if b[i] != p[k] { throw fail(start, "invalid literal; expected true, false or null") }
            i += 1
        }
    }

    // MARK: numbers

    @inline(__always)
    func isDigit(_ k: Int) -> Bool { k < n && b[k] &- 0x30 < 10 }

    /// Scans `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` starting at `i`.
    mutating func scanNumber() throws(JSONSyntaxError) {
        if b[i] == 0x2D {
            i += 1
            if !isDigit(i) { throw i < n ? fail(i, "expected a digit after '-'") : endOfInput }
        }
        if b[i] == 0x30 {
            i += 1
            if isDigit(i) { throw fail(i - 1, "leading zeros are not allowed") }
        } else {
            while isDigit(i) { i += 1 }
        }
        if i < n && b[i] == 0x2E {
            i += 1
            if !isDigit(i) { throw i < n ? fail(i, "expected a digit after '.'") : endOfInput }
            while isDigit(i) { i += 1 }
        }
        if i < n && (b[i] | 0x20) == 0x65 {
            i += 1
            if i < n && (b[i] == 0x2B || b[i] == 0x2D) { i += 1 }
            if !isDigit(i) { throw i < n ? fail(i, "expected a digit in the exponent") : endOfInput }
            while isDigit(i) { i += 1 }
        }
    }

    // MARK: strings

    /// Scans and validates a string whose opening quote is at `i`; leaves `i` after the
    /// closing quote. Returns whether it contains escapes.
    mutating func scanString() throws(JSONSyntaxError) -> Bool {
        let start = i
        i += 1
        var escaped = false
        while true {
            // 8 bytes at a time up to the first quote, backslash, control or
            // non-ASCII byte.
            while i + 8 <= n {
                let x = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let ones: UInt64 = 0x0101_0101_0101_0101
                let high: UInt64 = 0x8080_8080_8080_8080
                // Classic "has a byte less than n" / "has a zero byte" bit tricks. A
                // borrow can flag a byte above a real match, never below one, so the
                // lowest flag is the first special byte.
                let q = x ^ (ones &* 0x22)
                let bs = x ^ (ones &* 0x5C)
                let special = (((x &- ones &* 0x20) & ~x) | ((q &- ones) & ~q) | ((bs &- ones) & ~bs) | x) & high
                if special != 0 {
                    i += special.trailingZeroBitCount >> 3
                    break
                }
                i += 8
            }
            guard i < n else { throw fail(start, "unterminated string") }
            let c = b[i]
            if c == 0x22 {
                i += 1
                return escaped
            } else if c == 0x5C {
                escaped = true
                try scanEscape(stringStart: start)
            } else if c < 0x20 {
                throw fail(i, "control character in string")
            } else if c < 0x80 {
                i += 1
            } else {
                let len = utf8Length(i)
                if len == 0 { throw fail(i, "invalid UTF-8") }
                i += len
            }
        }
    }

    @inline(__always)
    func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: return UInt32(c - 0x30)
        case 0x41...0x46: return UInt32(c - 0x41 + 10)
        case 0x61...0x66: return UInt32(c - 0x61 + 10)
        default: return nil
        }
    }

    /// The four hex digits at `at`, or nil.
    func hex4(_ at: Int) -> UInt32? {
        guard at + 4 <= n else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 {
            guard let h = hexValue(b[at + k]) else { return nil }
            v = v << 4 | h
        }
        return v
    }

    /// Validates the escape at `i` (a backslash) and moves past it.
    mutating func scanEscape(stringStart: Int) throws(JSONSyntaxError) {
        guard i + 1 < n else { throw fail(stringStart, "unterminated string") }
        switch b[i + 1] {
        case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74:
            i += 2
        case 0x75:
            guard let u = hex4(i + 2) else { throw fail(i, "invalid \\u escape: expected 4 hex digits") }
            if u >= 0xD800 && u <= 0xDBFF {
                guard i + 7 < n, b[i + 6] == 0x5C, b[i + 7] == 0x75, let lo = hex4(i + 8),
                      lo >= 0xDC00 && lo <= 0xDFFF else {
                    throw fail(i, "unpaired surrogate \\u\(hexText(u))")
                }
                i += 12
            } else if u >= 0xDC00 && u <= 0xDFFF {
                throw fail(i, "unpaired surrogate \\u\(hexText(u))")
            } else {
                i += 6
            }
        default:
            let c = b[i + 1]
            if c > 0x20 && c < 0x7F {
                throw fail(i, "invalid escape \\" + String(UnicodeScalar(c)))
            }
            throw fail(i, "invalid escape: '\\' followed by \(c < 0x80 ? JSONScanner.codePoint(UInt32(c)) : "a non-ASCII character")")
        }
    }

    func hexText(_ u: UInt32) -> String {
        var h = String(u, radix: 16, uppercase: true)
        while h.utf8.count < 4 { h = "0" + h }
        return h
    }
}
