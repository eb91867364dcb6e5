// Building `JSONValue` trees: the part of the scanner that `JSON.parse` adds to
// what `JSON.validate` does.

extension JSONScanner {
    mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard i < n else { throw endOfInput }
        switch b[i] {
        case 0x22:
            return .string(try parseString())
        case 0x7B:
            let d = depth + 1
            try enter(depth: d)
            var members: [JSONMember] = []
            if i < n && b[i] == 0x7D { i += 1; return .object(members) }
            while true {
                try memberKey()
                let key = try parseString()
                try colon()
                members.append(JSONMember(key, try parseValue(depth: d)))
                skipWhitespace()
                guard i < n else { throw endOfInput }
                switch b[i] {
                case 0x2C: try afterComma(0x7D)
                case 0x7D: i += 1; return .object(members)
                default: throw unexpected(i, expected: "',' or '}'")
                }
            }
        case 0x5B:
            let d = depth + 1
            try enter(depth: d)
            var elements: [JSONValue] = []
            if i < n && b[i] == 0x5D { i += 1; return .array(elements) }
            while true {
                elements.append(try parseValue(depth: d))
                skipWhitespace()
                guard i < n else { throw endOfInput }
                switch b[i] {
                case 0x2C: try afterComma(0x5D)
                case 0x5D: i += 1; return .array(elements)
                default: throw unexpected(i, expected: "',' or ']'")
                }
            }
        case 0x74: try literal("true"); return .bool(true)
        case 0x66: try literal("false"); return .bool(false)
        case 0x6E: try literal("null"); return .null
        case 0x2D, 0x30...0x39:
            let start = i
            try scanNumber()
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
        default:
            throw unexpected(i, expected: "a value")
        }
    }

    /// Parses the string at `i` (validated by `scanString`) and decodes its escapes.
    mutating func parseString() throws(JSONSyntaxError) -> String {
        let start = i
        let escaped = try scanString()
        let body = UnsafeRawBufferPointer(rebasing: b[(start + 1)..<(i - 1)])
        if !escaped { return String(decoding: body, as: UTF8.self) }
        // Already validated: every backslash starts a well-formed escape.
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var k = 0
        let m = body.count
        while k < m {
            let c = body[k]
            if c != 0x5C { out.append(c); k += 1; continue }
            let e = body[k + 1]
            k += 2
            switch e {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var u = hex4In(body, k)
                k += 4
                if u >= 0xD800 && u <= 0xDBFF {
                    let lo = hex4In(body, k + 2)
                    k += 6
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                }
                appendUTF8(u, to: &out)
            default: out.append(e)   // " \ /
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    func hex4In(_ buf: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | (hexValue(buf[at + k]) ?? 0) }
        return v
    }

    func appendUTF8(_ u: UInt32, to out: inout [UInt8]) {
        if u < 0x80 {
            out.append(UInt8(u))
        } else if u < 0x800 {
            out.append(UInt8(0xC0 | (u >> 6)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        } else if u < 0x10000 {
            out.append(UInt8(0xE0 | (u >> 12)))
            out.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (u >> 18)))
            out.append(UInt8(0x80 | ((u >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((u >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (u & 0x3F)))
        }
    }
}
