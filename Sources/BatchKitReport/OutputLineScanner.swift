import BatchKit
import Foundation

/// One JSON value found by ``OutputLineScanner``: its kind, where it is in the line, and its
/// number when it is one. Strings and containers are not decoded: only the few the report uses
/// are, on demand, and exactly as ``JSONValue/init(parsing:)`` would.
struct ScannedValue {
    enum Kind: UInt8 {
        /// The member was not in the line.
        case absent
        case object, array
        /// A string without escapes: its bytes are its UTF-8 (decoded as the parser decodes).
        case string
        /// A string with backslash escapes: decoded by the reference parser when asked for.
        case escapedString
        case integer, double, bool, null
    }

    var kind = Kind.absent
    /// The value's bytes in the line, quotes included for strings.
    var start = 0
    var end = 0
    var integer = 0
    var double = 0.0

    var isPresent: Bool { kind != .absent }
    var isObject: Bool { kind == .object }

    /// ``JSONValue/stringValue`` of the value.
    func stringValue(in b: UnsafeBufferPointer<UInt8>) -> String? {
        switch kind {
        case .string: return String(decoding: UnsafeBufferPointer(rebasing: b[start + 1..<end - 1]), as: UTF8.self)
        case .escapedString: return json(in: b).stringValue
        default: return nil
        }
    }

    /// ``JSONValue/intValue`` of the value.
    func intValue(in b: UnsafeBufferPointer<UInt8>) -> Int? {
        switch kind {
        case .integer: return integer
        case .double: return JSONValue.double(double).intValue
        case .string, .escapedString: return stringValue(in: b).flatMap { Int($0) }
        default: return nil
        }
    }

    /// ``JSONValue/doubleValue`` of the value.
    var doubleValue: Double? {
        switch kind {
        case .integer: return Double(integer)
        case .double: return double
        default: return nil
        }
    }

    /// The value as the reference parser reads it (`.null` when absent).
    func json(in b: UnsafeBufferPointer<UInt8>) -> JSONValue {
        guard kind != .absent else { return .null }
        // The scanner accepted these bytes, so the parser does too.
        return (try? JSONValue(parsing: UnsafeBufferPointer(rebasing: b[start..<end]))) ?? .null
    }

    /// Whether the value is a plain string with these bytes.
    func isString(_ literal: StaticString, in b: UnsafeBufferPointer<UInt8>) -> Bool {
        kind == .string && OutputLineScanner.equal(b, start + 1, end - 1, literal)
    }
}

/// Reads the members of an output line that ``BatchReport`` counts straight from its bytes,
/// without building a ``JSONValue`` tree: the line's `custom_id`, `response` (`status_code`;
/// `body`'s `model`, `modelVersion` and `error`), `error` and `batchkit` (route, attempts,
/// latency, times, usage, cost, job id, error code, `fields.model`). Every other value is
/// skipped, but checked by the same rules as ``JSONValue/init(parsing:)``, so a line the scanner
/// reads is one the parser reads, with the same values.
///
/// The scanner gives up (`nil`) on anything it does not read the parser's way for certain: a
/// line that is not JSON, or not an object, a duplicated or escaped member name among the ones
/// it reads, deep nesting. The caller then reads the line with the parser (the reference path),
/// which decides.
struct OutputLineScanner {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0
    var depth = 0

    init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

    // MARK: The members the report reads

    /// The members of one line; absent ones have kind `.absent`.
    struct Line {
        var customID = ScannedValue()
        var response = ScannedValue()
        var statusCode = ScannedValue()
        var body = ScannedValue()
        var bodyModel = ScannedValue()
        var bodyModelVersion = ScannedValue()
        var bodyError = ScannedValue()
        var lineError = ScannedValue()
        var meta = ScannedValue()
        var route = ScannedValue()
        var attempts = ScannedValue()
        var latency = ScannedValue()
        var rateLimited = ScannedValue()
        var startedAt = ScannedValue()
        var endedAt = ScannedValue()
        var fieldsModel = ScannedValue()
        var usage = ScannedValue()
        var usageCounts = (ScannedValue(), ScannedValue(), ScannedValue(), ScannedValue(),
                           ScannedValue(), ScannedValue(), ScannedValue(), ScannedValue())
        var cost = ScannedValue()
        var jobID = ScannedValue()
        var metaErrorCode = ScannedValue()
    }

    /// Scans a whole line; `nil` when the reference parser must read it.
    static func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Line? {
        var s = OutputLineScanner(bytes)
        var line = Line()
        s.skipWS()
        guard s.i < s.b.count, s.b[s.i] == UInt8(ascii: "{") else { return nil }
        var seen: UInt32 = 0
        let ok = s.object { s, k0, k1 in
            switch s.key(k0, k1) {
            case .customID: guard s.first(&seen, 0) else { return false }; return s.value(&line.customID)
            case .response: guard s.first(&seen, 1) else { return false }; return s.response(&line)
            case .error: guard s.first(&seen, 2) else { return false }; return s.value(&line.lineError)
            case .batchkit: guard s.first(&seen, 3) else { return false }; return s.meta(&line)
            case .unreadable: return false
            default: return s.skipValue()
            }
        }
        guard ok else { return nil }
        s.skipWS()
        guard s.i == s.b.count else { return nil }
        return line
    }

    private mutating func response(_ line: inout Line) -> Bool {
        guard b[i] == UInt8(ascii: "{") else { return value(&line.response) }
        let start = i
        var seen: UInt32 = 0
        let ok = object { s, k0, k1 in
            switch s.key(k0, k1) {
            case .statusCode: guard s.first(&seen, 0) else { return false }; return s.value(&line.statusCode)
            case .body: guard s.first(&seen, 1) else { return false }; return s.body(&line)
            case .unreadable: return false
            default: return s.skipValue()
            }
        }
        line.response = ScannedValue(kind: .object, start: start, end: i)
        return ok
    }

    private mutating func body(_ line: inout Line) -> Bool {
        guard b[i] == UInt8(ascii: "{") else { return value(&line.body) }
        let start = i
        var seen: UInt32 = 0
        let ok = object { s, k0, k1 in
            switch s.key(k0, k1) {
            case .model: guard s.first(&seen, 0) else { return false }; return s.value(&line.bodyModel)
            case .modelVersion: guard s.first(&seen, 1) else { return false }; return s.value(&line.bodyModelVersion)
            case .error: guard s.first(&seen, 2) else { return false }; return s.value(&line.bodyError)
            case .unreadable: return false
            default: return s.skipValue()
            }
        }
        line.body = ScannedValue(kind: .object, start: start, end: i)
        return ok
    }

    private mutating func meta(_ line: inout Line) -> Bool {
        guard b[i] == UInt8(ascii: "{") else { return value(&line.meta) }
        let start = i
        var seen: UInt32 = 0
        let ok = object { s, k0, k1 in
            let k = s.key(k0, k1)
            switch k {
            case .route: guard s.first(&seen, 0) else { return false }; return s.value(&line.route)
            case .attempts: guard s.first(&seen, 1) else { return false }; return s.value(&line.attempts)
            case .latencyMs: guard s.first(&seen, 2) else { return false }; return s.value(&line.latency)
            case .rateLimited: guard s.first(&seen, 3) else { return false }; return s.value(&line.rateLimited)
            case .startedAt: guard s.first(&seen, 4) else { return false }; return s.value(&line.startedAt)
            case .endedAt: guard s.first(&seen, 5) else { return false }; return s.value(&line.endedAt)
            case .cost: guard s.first(&seen, 6) else { return false }; return s.value(&line.cost)
            case .jobID: guard s.first(&seen, 7) else { return false }; return s.value(&line.jobID)
            case .fields: guard s.first(&seen, 8) else { return false }; return s.fields(&line)
            case .usage: guard s.first(&seen, 9) else { return false }; return s.usage(&line)
            case .error: guard s.first(&seen, 10) else { return false }; return s.metaError(&line)
            case .unreadable: return false
            default: return s.skipValue()
            }
        }
        line.meta = ScannedValue(kind: .object, start: start, end: i)
        return ok
    }

    private mutating func fields(_ line: inout Line) -> Bool {
        guard b[i] == UInt8(ascii: "{") else { return skipValue() }
        var seen: UInt32 = 0
        return object { s, k0, k1 in
            switch s.key(k0, k1) {
            case .model: guard s.first(&seen, 0) else { return false }; return s.value(&line.fieldsModel)
            case .unreadable: return false
            default: return s.skipValue()
            }
        }
    }

    private mutating func metaError(_ line: inout Line) -> Bool {
        guard b[i] == UInt8(ascii: "{") else { return skipValue() }
        var seen: UInt32 = 0
        return object { s, k0, k1 in
            switch s.key(k0, k1) {
            case .code: guard s.first(&seen, 0) else { return false }; return s.value(&line.metaErrorCode)
            case .unreadable: return false
            default: return s.skipValue()
            }
        }
    }

    private mutating func usage(_ line: inout Line) -> Bool {
        guard b[i] == UInt8(ascii: "{") else { return value(&line.usage) }
        let start = i
        var seen: UInt32 = 0
        let ok = object { s, k0, k1 in
            switch s.key(k0, k1) {
            case .input: guard s.first(&seen, 0) else { return false }; return s.value(&line.usageCounts.0)
            case .output: guard s.first(&seen, 1) else { return false }; return s.value(&line.usageCounts.1)
            case .cached: guard s.first(&seen, 2) else { return false }; return s.value(&line.usageCounts.2)
            case .reasoning: guard s.first(&seen, 3) else { return false }; return s.value(&line.usageCounts.3)
            case .batchInput: guard s.first(&seen, 4) else { return false }; return s.value(&line.usageCounts.4)
            case .batchOutput: guard s.first(&seen, 5) else { return false }; return s.value(&line.usageCounts.5)
            case .cacheWrite: guard s.first(&seen, 6) else { return false }; return s.value(&line.usageCounts.6)
            case .cacheWrite1h: guard s.first(&seen, 7) else { return false }; return s.value(&line.usageCounts.7)
            case .unreadable: return false
            default: return s.skipValue()
            }
        }
        line.usage = ScannedValue(kind: .object, start: start, end: i)
        return ok
    }

    /// Marks member `bit` as seen; `false` when it was already (the parser keeps the last of
    /// duplicated names; the scanner leaves such a line to it).
    @inline(__always)
    private func first(_ seen: inout UInt32, _ bit: UInt32) -> Bool {
        let m: UInt32 = 1 << bit
        if seen & m != 0 { return false }
        seen |= m
        return true
    }

    /// The member names the scanner reads, at any of its levels.
    enum Key {
        case other, unreadable
        case customID, response, error, batchkit
        case statusCode, body, model, modelVersion
        case route, attempts, latencyMs, rateLimited, startedAt, endedAt, cost, jobID, fields, usage, code
        case input, output, cached, reasoning, batchInput, batchOutput, cacheWrite, cacheWrite1h
    }

    /// Names the key between `k0` and `k1` (the quotes excluded); `.unreadable` for a key with an
    /// escape or a non-ASCII byte (it could decode to, or equal, a name the scanner reads).
    @inline(__always)
    private func key(_ k0: Int, _ k1: Int) -> Key {
        if k0 < 0 { return .unreadable }
        let n = k1 - k0
        switch n {
        case 4:
            if eq(k0, k1, "body") { return .body }
            if eq(k0, k1, "cost") { return .cost }
            if eq(k0, k1, "code") { return .code }
        case 5:
            if eq(k0, k1, "error") { return .error }
            if eq(k0, k1, "route") { return .route }
            if eq(k0, k1, "model") { return .model }
            if eq(k0, k1, "usage") { return .usage }
            if eq(k0, k1, "input") { return .input }
        case 6:
            if eq(k0, k1, "job_id") { return .jobID }
            if eq(k0, k1, "fields") { return .fields }
            if eq(k0, k1, "output") { return .output }
            if eq(k0, k1, "cached") { return .cached }
        case 8:
            if eq(k0, k1, "response") { return .response }
            if eq(k0, k1, "batchkit") { return .batchkit }
            if eq(k0, k1, "attempts") { return .attempts }
            if eq(k0, k1, "ended_at") { return .endedAt }
        case 9:
            if eq(k0, k1, "custom_id") { return .customID }
            if eq(k0, k1, "reasoning") { return .reasoning }
        case 10:
            if eq(k0, k1, "latency_ms") { return .latencyMs }
            if eq(k0, k1, "started_at") { return .startedAt }
        case 11:
            if eq(k0, k1, "status_code") { return .statusCode }
            if eq(k0, k1, "batch_input") { return .batchInput }
            if eq(k0, k1, "cache_write") { return .cacheWrite }
        case 12:
            if eq(k0, k1, "modelVersion") { return .modelVersion }
            if eq(k0, k1, "rate_limited") { return .rateLimited }
            if eq(k0, k1, "batch_output") { return .batchOutput }
        case 14:
            if eq(k0, k1, "cache_write_1h") { return .cacheWrite1h }
        default: break
        }
        return .other
    }

    @inline(__always)
    private func eq(_ s: Int, _ e: Int, _ literal: StaticString) -> Bool {
        Self.equal(b, s, e, literal)
    }

    /// Whether `b[s..<e]` is the bytes of `literal`.
    @inline(__always)
    static func equal(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard e - s == n else { return false }
        return memcmp(b.baseAddress! + s, literal.utf8Start, n) == 0
    }

    // MARK: The grammar (the rules of JSONByteParser, which decides whenever this gives up)

    @inline(__always)
    mutating func skipWS() {
        while i < b.count {
            let c = b[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
        }
    }

    /// Walks the object at `i` (`{`), calling `member` with each name's byte range (`-1` when the
    /// name is escaped or not ASCII) and the scanner at the value, which `member` must consume.
    @inline(__always)
    mutating func object(_ member: (inout OutputLineScanner, Int, Int) -> Bool) -> Bool {
        depth += 1
        if depth > 512 { return false }
        i += 1
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            return true
        }
        while true {
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return false }
            let k0 = i + 1
            guard let plain = skipString() else { return false }
            let k1 = i - 1
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { return false }
            i += 1
            skipWS()
            guard i < b.count else { return false }
            guard member(&self, plain ? k0 : -1, k1) else { return false }
            skipWS()
            guard i < b.count else { return false }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") {
                i += 1
                depth -= 1
                return true
            }
            return false
        }
    }

    /// Reads the value at `i` into `v`.
    @inline(__always)
    mutating func value(_ v: inout ScannedValue) -> Bool {
        let start = i
        let c = b[i]
        switch c {
        case UInt8(ascii: "\""):
            // Non-ASCII strings go to the parser too (rare in the members read).
            guard let plain = skipString() else { return false }
            v = ScannedValue(kind: plain ? .string : .escapedString, start: start, end: i)
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return number(&v)
        case UInt8(ascii: "n"):
            guard literal("null") else { return false }
            v = ScannedValue(kind: .null, start: start, end: i)
            return true
        default:
            guard skipValue() else { return false }
            v = ScannedValue(kind: c == UInt8(ascii: "{") ? .object : c == UInt8(ascii: "[") ? .array : .bool, start: start, end: i)
            return true
        }
    }

    /// Skips the value at `i`, checking it.
    mutating func skipValue() -> Bool {
        guard i < b.count else { return false }
        switch b[i] {
        case UInt8(ascii: "{"): return object { s, _, _ in s.skipValue() }
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return skipString() != nil
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            var v = ScannedValue()
            return number(&v)
        default: return false
        }
    }

    private mutating func array() -> Bool {
        depth += 1
        if depth > 512 { return false }
        i += 1
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "]") {
            i += 1
            depth -= 1
            return true
        }
        while true {
            skipWS()
            guard skipValue() else { return false }
            skipWS()
            guard i < b.count else { return false }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") {
                i += 1
                depth -= 1
                return true
            }
            return false
        }
    }

    @inline(__always)
    private mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count, memcmp(b.baseAddress! + i, word.utf8Start, n) == 0 else { return false }
        i += n
        return true
    }

    /// Skips the string at `i` (its opening quote): `true` when it has no escape and only ASCII
    /// bytes (a plain name), `false` when it has either, `nil` when the parser would reject it.
    @inline(__always)
    private mutating func skipString() -> Bool? {
        i += 1
        var plain = true
        let base = b.baseAddress!
        let n = b.count
        // Eight bytes at a time while none is a quote, a backslash, a control or a non-ASCII byte.
        while i + 8 <= n {
            let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            if !Self.mayStop(w) { i += 8 } else { break }
        }
        while i < n {
            let c = base[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return plain
            }
            if c == UInt8(ascii: "\\") {
                plain = false
                guard i + 1 < n else { return nil }
                switch base[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard i + 6 <= n else { return nil }
                    for k in 2..<6 where !Self.isHex(base[i + k]) { return nil }
                    i += 6
                default: return nil
                }
                continue
            }
            if c < 0x20 { return nil }
            if c >= 0x80 { plain = false }
            i += 1
            if i + 8 <= n, !Self.mayStop(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) {
                i += 8
                while i + 8 <= n, !Self.mayStop(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) { i += 8 }
            }
        }
        return nil
    }

    /// Whether any byte of `w` is `"`, `\`, below 0x20 or above 0x7F.
    @inline(__always)
    static func mayStop(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        func zeroByte(_ x: UInt64) -> UInt64 { (x &- ones) & ~x & high }
        let quote = zeroByte(w ^ (ones &* 0x22))
        let backslash = zeroByte(w ^ (ones &* 0x5C))
        let control = (w &- ones &* 0x20) & ~w & high  // a byte below 0x20 (or a borrow from one)
        return (quote | backslash | control | (w & high)) != 0
    }

    @inline(__always)
    static func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    }

    /// Reads the number at `i` by the parser's rules: a sign, a digit, then any run of digits,
    /// `.`, `e`, `E`, `+`, `-`; at most 18 characters of `-` and digits are an integer read
    /// directly, anything else is what `Int(text)` or `Double(text)` makes of it (or not a number).
    @inline(__always)
    private mutating func number(_ v: inout ScannedValue) -> Bool {
        let start = i
        var isInteger = true
        var neg = false
        if b[i] == UInt8(ascii: "-") {
            neg = true
            i += 1
        }
        guard i < b.count, b[i] >= 0x30, b[i] <= 0x39 else { return false }
        var value = 0
        while i < b.count {
            let c = b[i]
            if c >= 0x30 && c <= 0x39 {
                value = value &* 10 &+ Int(c &- 0x30)
                i += 1
                continue
            }
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+")
                || c == UInt8(ascii: "-")
            {
                isInteger = false
                i += 1
                continue
            }
            break
        }
        if isInteger, i - start <= 18 {
            v = ScannedValue(kind: .integer, start: start, end: i, integer: neg ? -value : value)
            return true
        }
        guard let parsed = try? JSONValue(parsing: UnsafeBufferPointer(rebasing: b[start..<i])) else { return false }
        switch parsed {
        case .int(let n): v = ScannedValue(kind: .integer, start: start, end: i, integer: n)
        case .double(let d): v = ScannedValue(kind: .double, start: start, end: i, double: d)
        default: return false
        }
        return true
    }
}
