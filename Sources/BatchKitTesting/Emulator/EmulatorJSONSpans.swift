import BatchKit
import Foundation

/// Where the members of a JSON object and the elements of an array lie in a request body, found
/// without building parsed values, so a large create body is read one request at a time instead
/// of as one parsed tree. Only a clean scan is trusted: for anything unexpected these answer
/// `nil`, and the caller parses the whole body as before (so error answers do not change).
enum EmulatorJSONSpans {
    private static let quote = UInt8(ascii: "\"")

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }

    private static func skipSpace(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int, upTo end: Int) {
        while i < end, isSpace(b[i]) { i += 1 }
    }

    /// The end of the string starting at `start` (its opening quote).
    private static func stringEnd(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var i = start + 1
        while i < b.count {
            if b[i] == UInt8(ascii: "\\") {
                i += 2
            } else if b[i] == quote {
                return i + 1
            } else {
                i += 1
            }
        }
        return nil
    }

    /// The end of the value starting at `start`, found by its brackets and strings only (the
    /// caller parses the span, which checks the rest).
    private static func valueEnd(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard start < b.count else { return nil }
        var i = start
        switch b[i] {
        case quote:
            return stringEnd(b, from: i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while i < b.count {
                switch b[i] {
                case quote:
                    guard let end = stringEnd(b, from: i) else { return nil }
                    i = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default: break
                }
                i += 1
            }
            return nil
        default:
            while i < b.count, !isSpace(b[i]), b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "}"), b[i] != UInt8(ascii: "]") {
                i += 1
            }
            return i > start ? i : nil
        }
    }

    /// The members of the object that is the whole of `b`, in order: each key and its value's span.
    static func members(_ b: UnsafeBufferPointer<UInt8>) -> [(key: String, value: Range<Int>)]? {
        var i = 0
        var out: [(key: String, value: Range<Int>)] = []
        skipSpace(b, &i, upTo: b.count)
        guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        skipSpace(b, &i, upTo: b.count)
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
            skipSpace(b, &i, upTo: b.count)
            return i == b.count ? out : nil
        }
        while true {
            skipSpace(b, &i, upTo: b.count)
            guard i < b.count, b[i] == quote, let keyEnd = stringEnd(b, from: i),
                case .string(let key)? = try? JSONValue(parsing: UnsafeBufferPointer(rebasing: b[i..<keyEnd]))
            else { return nil }
            i = keyEnd
            skipSpace(b, &i, upTo: b.count)
            guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace(b, &i, upTo: b.count)
            guard let end = valueEnd(b, from: i) else { return nil }
            out.append((key, i..<end))
            i = end
            skipSpace(b, &i, upTo: b.count)
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: ",") {
                i += 1
            } else if b[i] == UInt8(ascii: "}") {
                i += 1
                skipSpace(b, &i, upTo: b.count)
                return i == b.count ? out : nil
            } else {
                return nil
            }
        }
    }

    /// The elements of the array spanning exactly `range` of `b`.
    static func elements(_ b: UnsafeBufferPointer<UInt8>, in range: Range<Int>) -> [Range<Int>]? {
        var i = range.lowerBound
        let end = range.upperBound
        guard i < end, b[i] == UInt8(ascii: "[") else { return nil }
        i += 1
        var out: [Range<Int>] = []
        skipSpace(b, &i, upTo: end)
        if i < end, b[i] == UInt8(ascii: "]") { return i + 1 == end ? out : nil }
        while true {
            skipSpace(b, &i, upTo: end)
            guard let valueEnd = valueEnd(b, from: i), valueEnd <= end else { return nil }
            out.append(i..<valueEnd)
            i = valueEnd
            skipSpace(b, &i, upTo: end)
            guard i < end else { return nil }
            if b[i] == UInt8(ascii: ",") {
                i += 1
            } else {
                return b[i] == UInt8(ascii: "]") && i + 1 == end ? out : nil
            }
        }
    }

    /// The spans of the elements of the array that is member `name` of the object `body`, when
    /// the whole body is valid JSON and that member is an array (the last one, should the name
    /// repeat, as the parser takes it); `nil` otherwise. Every span parses.
    static func arrayMember(_ name: String, of body: Data) -> [Range<Data.Index>]? {
        body.withUnsafeBytes { raw -> [Range<Data.Index>]? in
            let b = raw.bindMemory(to: UInt8.self)
            guard let members = members(b), let last = members.lastIndex(where: { $0.key == name }),
                let spans = elements(b, in: members[last].value)
            else { return nil }
            func parses(_ r: Range<Int>) -> Bool { (try? JSONValue(parsing: UnsafeBufferPointer(rebasing: b[r]))) != nil }
            for (k, m) in members.enumerated() where k != last {
                guard parses(m.value) else { return nil }
            }
            for span in spans {
                guard parses(span) else { return nil }
            }
            return spans.map { (body.startIndex + $0.lowerBound)..<(body.startIndex + $0.upperBound) }
        }
    }
}
