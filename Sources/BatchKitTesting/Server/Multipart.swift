public import Foundation

/// One part of a `multipart/form-data` body: a form field or an uploaded file.
public struct MultipartPart: Sendable, Hashable {
    /// The field name from `Content-Disposition: form-data; name="..."`.
    public var name: String
    /// The file name, for file parts (`filename="batchinput.jsonl"`); `nil` for plain fields.
    public var filename: String?
    /// The part's own `Content-Type`, if it carried one.
    public var contentType: String?
    /// The part's bytes, exactly as sent (no trailing line break).
    public var data: Data

    /// Creates a part.
    public init(name: String, filename: String? = nil, contentType: String? = nil, data: Data) {
        self.name = name
        self.filename = filename
        self.contentType = contentType
        self.data = data
    }

    /// The bytes as UTF-8 text (for plain fields such as `purpose`).
    public var text: String { String(decoding: data, as: UTF8.self) }
}

/// Why a `multipart/form-data` body could not be parsed.
public struct MultipartError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, in one line.
    public var message: String

    /// Creates an error with a message.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { "multipart/form-data: \(message)" }
}

/// A `multipart/form-data` parser (RFC 7578) for the emulator's file uploads.
///
/// ```swift
/// let parts = try MultipartForm.parse(body: request.body, contentType: request.headers["Content-Type"] ?? "")
/// let file = parts.first { $0.name == "file" }
/// ```
///
/// The body is scanned once for boundaries; each part's data is one slice copy, so large
/// uploads parse in linear time.
public struct MultipartForm: Sendable {
    /// Splits a body into its parts. Throws when the content type has no boundary, or the body
    /// has no opening or closing delimiter, or a part lacks a `Content-Disposition` name.
    public static func parse(body: Data, contentType: String) throws -> [MultipartPart] {
        try parse(body: body, contentType: contentType, sharingStorage: false)
    }

    /// Splits a body into its parts like ``parse(body:contentType:)``; with `sharingStorage` each
    /// part's `data` is a slice of `body` (its indices are those of `body`, not zero-based) instead
    /// of a copy, so a large upload (a mapped request body) is never copied into memory.
    static func parse(body: Data, contentType: String, sharingStorage: Bool) throws -> [MultipartPart] {
        guard let boundary = boundary(of: contentType) else {
            throw MultipartError("the Content-Type has no boundary parameter")
        }
        let delimiter = Data("--\(boundary)".utf8)
        let bytes = body
        guard let first = find(delimiter, in: bytes, from: bytes.startIndex) else {
            throw MultipartError("the body has no opening boundary")
        }
        var parts: [MultipartPart] = []
        var cursor = first + delimiter.count
        let separator = Data("\r\n--\(boundary)".utf8)
        while true {
            // After a delimiter: `--` closes the body; otherwise optional whitespace then CRLF.
            if hasPrefix(bytes, at: cursor, "--") { return parts }
            while cursor < bytes.endIndex, bytes[cursor] == 0x20 || bytes[cursor] == 0x09 { cursor += 1 }
            if hasPrefix(bytes, at: cursor, "\r\n") {
                cursor += 2
            } else if cursor < bytes.endIndex, bytes[cursor] == 0x0A {
                cursor += 1
            } else {
                throw MultipartError("malformed boundary line")
            }
            guard let next = find(separator, in: bytes, from: cursor) else {
                throw MultipartError("the body has no closing boundary")
            }
            parts.append(try part(bytes[cursor..<next], sharingStorage: sharingStorage))
            cursor = next + separator.count
        }
    }

    /// The `boundary` parameter of a `multipart/form-data` content type (quotes removed).
    public static func boundary(of contentType: String) -> String? {
        for (key, value) in parameters(contentType.split(separator: ";").dropFirst().map(String.init))
        where key == "boundary" && !value.isEmpty {
            return value
        }
        return nil
    }

    // MARK: - Internals

    private static func part(_ slice: Data, sharingStorage: Bool) throws -> MultipartPart {
        let headerEnd: Int
        let bodyStart: Int
        if hasPrefix(slice, at: slice.startIndex, "\r\n") {
            headerEnd = slice.startIndex
            bodyStart = slice.startIndex + 2
        } else if let r = find(Data("\r\n\r\n".utf8), in: slice, from: slice.startIndex) {
            headerEnd = r
            bodyStart = r + 4
        } else {
            throw MultipartError("a part has no header terminator")
        }
        let headerText = String(decoding: slice[slice.startIndex..<headerEnd], as: UTF8.self)
        var name: String?
        var filename: String?
        var contentType: String?
        for line in headerText.components(separatedBy: "\r\n") where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let field = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch field {
            case "content-disposition":
                let pieces = splitParameters(value)
                for (k, v) in parameters(Array(pieces.dropFirst())) {
                    if k == "name" { name = v }
                    if k == "filename" { filename = v }
                }
            case "content-type":
                contentType = value
            default:
                break
            }
        }
        guard let name else { throw MultipartError("a part has no Content-Disposition name") }
        let data = sharingStorage ? slice[bodyStart...] : Data(slice[bodyStart...])
        return MultipartPart(name: name, filename: filename, contentType: contentType, data: data)
    }

    /// Splits `a; b="c;d"; e` on semicolons outside quotes.
    private static func splitParameters(_ s: String) -> [String] {
        var out: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for ch in s {
            if escaped { current.append(ch); escaped = false; continue }
            if quoted && ch == "\\" { current.append(ch); escaped = true; continue }
            if ch == "\"" { quoted.toggle() }
            if ch == ";" && !quoted { out.append(current); current = ""; continue }
            current.append(ch)
        }
        out.append(current)
        return out
    }

    /// `key=value` pairs, keys lowercased, quoted values unquoted and unescaped.
    private static func parameters(_ pieces: [String]) -> [(String, String)] {
        pieces.compactMap { piece in
            guard let eq = piece.firstIndex(of: "=") else { return nil }
            let key = piece[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            var value = piece[piece.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
                var unescaped = ""
                var escaped = false
                for ch in value {
                    if escaped { unescaped.append(ch); escaped = false } else if ch == "\\" { escaped = true } else { unescaped.append(ch) }
                }
                value = unescaped
            }
            return (key, value)
        }
    }

    private static func hasPrefix(_ data: Data, at index: Int, _ prefix: String) -> Bool {
        let p = Array(prefix.utf8)
        guard index >= data.startIndex, index + p.count <= data.endIndex else { return false }
        for (i, b) in p.enumerated() where data[index + i] != b { return false }
        return true
    }

    /// The index of the first occurrence of `needle` in `haystack` at or after `from`.
    static func find(_ needle: Data, in haystack: Data, from: Int) -> Int? {
        guard !needle.isEmpty, from >= haystack.startIndex, from <= haystack.endIndex else { return nil }
        return haystack.withUnsafeBytes { (hay: UnsafeRawBufferPointer) -> Int? in
            needle.withUnsafeBytes { (pat: UnsafeRawBufferPointer) -> Int? in
                guard let hayBase = hay.baseAddress, let patBase = pat.baseAddress else { return nil }
                let offset = from - haystack.startIndex
                let first = pat[0]
                let n = hay.count
                let m = pat.count
                var i = offset
                while i + m <= n {
                    // memchr to the next candidate first byte, then compare the rest.
                    guard let hit = memchr(hayBase + i, Int32(first), n - m - i + 1) else { return nil }
                    let j = hayBase.distance(to: UnsafeRawPointer(hit))
                    if memcmp(hayBase + j, patBase, m) == 0 { return haystack.startIndex + j }
                    i = j + 1
                }
                return nil
            }
        }
    }
}
