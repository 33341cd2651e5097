package import Foundation

/// What reading a job's result lines found.
///
/// One policy for every provider: a line that can be read becomes its result; a line that cannot
/// be read (not JSON, cut short, or JSON the provider's parser rejects) becomes a retryable
/// `invalidResponse` failure for its id when the id can still be recovered, and is counted in
/// ``malformedLines`` otherwise (its id then has no result, which the processor reports as
/// missing).
package struct BatchResultsSummary: Sendable, Hashable {
    /// Lines reported as results: successes, failures, and unreadable lines whose id was recovered.
    package var results: Int
    /// Of ``results``, the lines that could not be read but named their id: reported as a
    /// retryable `invalidResponse` failure for that id.
    package var unreadableLines: Int
    /// Lines that could not be read and named no id: skipped.
    package var malformedLines: Int
    /// `file:line` of the first skipped lines (at most 20), for diagnostics.
    package var malformedLocations: [String]

    /// Creates a summary.
    package init(results: Int = 0, unreadableLines: Int = 0, malformedLines: Int = 0, malformedLocations: [String] = []) {
        self.results = results
        self.unreadableLines = unreadableLines
        self.malformedLines = malformedLines
        self.malformedLocations = malformedLocations
    }

    /// Counts a line that named no id, keeping its location among the first ones.
    package mutating func skip(at location: String) {
        malformedLines += 1
        if malformedLocations.count < 20 { malformedLocations.append(location) }
    }
}

/// Reads a provider's JSONL result file line by line (the file is never one string in memory),
/// applying the one malformed-line policy of ``BatchResultsSummary``.
package enum BatchResultsFile {
    /// Reads `file`, calling `handler` with one result per line that yields one.
    ///
    /// - Parameters:
    ///   - name: what locations name the file as (a file id, a URL path).
    ///   - idField: the member holding the custom id (`custom_id`, `key`).
    ///   - isValidID: whether a recovered id can be the provider's custom id at all.
    ///   - summary: what was found is added to it (several files of one job share a summary).
    ///   - parse: the provider's reading of one line whose id is known; `nil` when it cannot
    ///     make a result of it.
    package static func read(
        _ file: URL, name: String, idField: String, isValidID: (String) -> Bool = { !$0.isEmpty },
        summary: inout BatchResultsSummary,
        parse: (_ line: JSONValue, _ id: String) -> BatchResult?,
        handler: (BatchResult) async throws -> Void
    ) async throws {
        var found = summary
        try await JSONLReader.forEachLine(in: file) { line, lineNumber in
            let json = try? JSONValue(parsing: line)
            if let json, let id = json[idField]?.stringValue, let result = parse(json, id) {
                found.results += 1
                try await handler(result)
                return
            }
            let id = json == nil ? salvageID(line, field: idField) : json?[idField]?.stringValue
            if let id, isValidID(id) {
                found.results += 1
                found.unreadableLines += 1
                let what = json == nil ? "is not valid JSON" : "is not a result this provider sends"
                try await handler(BatchResult(
                    id: id,
                    outcome: .failure(BatchError(.invalidResponse, "\(name):\(lineNumber): the result line for \(id) \(what)", isRetryable: true)),
                    attempts: 1, route: .batch))
            } else {
                found.skip(at: "\(name):\(lineNumber)")
            }
        }
        summary = found
    }

    /// The value of `"<field>": "..."` in a line that is not valid JSON (cut short, garbled),
    /// when it can still be read: the first such member, its string complete (closing quote
    /// present) and its escapes decoded.
    package static func salvageID(_ line: ArraySlice<UInt8>, field: String) -> String? {
        let key = Array("\"\(field)\"".utf8)
        let bytes = Array(line)
        var i = 0
        while i + key.count <= bytes.count {
            guard bytes[i..<(i + key.count)].elementsEqual(key) else {
                i += 1
                continue
            }
            var j = i + key.count
            while j < bytes.count, bytes[j] == 0x20 || bytes[j] == 0x09 { j += 1 }
            guard j < bytes.count, bytes[j] == UInt8(ascii: ":") else {
                i += 1
                continue
            }
            j += 1
            while j < bytes.count, bytes[j] == 0x20 || bytes[j] == 0x09 { j += 1 }
            guard j < bytes.count, bytes[j] == UInt8(ascii: "\"") else { return nil }
            // Find the closing quote, skipping escaped characters.
            var k = j + 1
            while k < bytes.count, bytes[k] != UInt8(ascii: "\"") {
                k += bytes[k] == UInt8(ascii: "\\") ? 2 : 1
            }
            guard k < bytes.count else { return nil }
            return (try? JSONValue(parsing: bytes[j...k]))?.stringValue
        }
        return nil
    }
}
