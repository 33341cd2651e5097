import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// The one malformed-line policy of result files: a line that cannot be read becomes a failure
/// for its id when the id can be recovered, and is counted otherwise.
@Suite struct BatchResultsFileTests {
    /// Reads `lines` as a result file whose ids are under `custom_id`; a line is a result when it
    /// has `"ok": true`, and unreadable to the provider's parser otherwise.
    func read(_ lines: [String], isValidID: (String) -> Bool = { !$0.isEmpty }) async throws -> ([BatchResult], BatchResultsSummary) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("results-\(UUID().uuidString).jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        var results: [BatchResult] = []
        var summary = BatchResultsSummary()
        try await BatchResultsFile.read(
            file, name: "out.jsonl", idField: "custom_id", isValidID: isValidID, summary: &summary,
            parse: { json, id in
                json["ok"]?.boolValue == true
                    ? BatchResult(id: id, outcome: .success(ModelResponse(text: "fine")), attempts: 1, route: .batch) : nil
            },
            handler: { results.append($0) })
        return (results, summary)
    }

    @Test func readableLinesBecomeTheirResults() async throws {
        let (results, summary) = try await read([#"{"custom_id":"a","ok":true}"#, #"{"custom_id":"b","ok":true}"#])
        #expect(results.map(\.id) == ["a", "b"])
        #expect(results.allSatisfy { $0.isSuccess })
        #expect(summary == BatchResultsSummary(results: 2))
    }

    @Test func aCutLineWhoseIDCanBeReadFailsForThatID() async throws {
        let (results, summary) = try await read([#"{"custom_id": "q-\"7\"", "response": {"bo"#])
        let r = try #require(results.first)
        #expect(r.id == #"q-"7""#)
        #expect(r.error?.code == .invalidResponse)
        #expect(r.error?.isRetryable == true)
        #expect(r.error?.message.contains("out.jsonl:1") == true)
        #expect(summary == BatchResultsSummary(results: 1, unreadableLines: 1))
    }

    @Test func jsonTheParserRejectsFailsForItsID() async throws {
        let (results, summary) = try await read([#"{"custom_id":"c","ok":false}"#])
        #expect(results.map(\.id) == ["c"])
        #expect(results.first?.error?.code == .invalidResponse)
        #expect(summary.unreadableLines == 1)
        #expect(summary.malformedLines == 0)
    }

    @Test func aLineWithoutARecoverableIDIsCountedWithItsLocation() async throws {
        let (results, summary) = try await read([
            #"{"custom_id":"a","ok":true}"#,
            "garbage",
            #"{"response":{"ok":true}}"#,  // JSON, but no id
            #"{"custom_id":"cut-in-the-mid"#,  // the id itself is cut: not recoverable
            #"{"custom_id":"bad id!","re"#,  // recovered, but not a valid id for this provider
        ], isValidID: { !$0.contains(" ") })
        #expect(results.map(\.id) == ["a"])
        #expect(summary.results == 1)
        #expect(summary.malformedLines == 4)
        #expect(summary.malformedLocations == ["out.jsonl:2", "out.jsonl:3", "out.jsonl:4", "out.jsonl:5"])
    }

    @Test func locationsAreCappedButTheCountIsNot() async throws {
        let (_, summary) = try await read(Array(repeating: "garbage", count: 30))
        #expect(summary.malformedLines == 30)
        #expect(summary.malformedLocations.count == 20)
    }

    @Test func salvageReadsOnlyACompleteMemberNamedExactly() {
        func salvage(_ s: String, _ field: String = "key") -> String? { BatchResultsFile.salvageID(ArraySlice(Array(s.utf8)), field: field) }
        #expect(salvage(#"{"key":"req-\"7\"","response":{"cand"#) == #"req-"7""#)
        #expect(salvage(#"{"key" :  "k1", "x"#) == "k1")
        #expect(salvage(#"{"response":{"cand"#) == nil)
        #expect(salvage(#"{"mykey":"no","key":"yes""#) == "yes")
        #expect(salvage(#"{"key":"unterminated"#) == nil)
        #expect(salvage(#"{"key":7}"#) == nil)
        #expect(salvage(#"{"text":"say \"key\":\"x\" ok"#) == nil)  // inside a string, not a member
    }
    /// Lines longer than the reader's chunk (many chunks long, CRLF, empty lines, no final
    /// newline) come out whole, numbered as in the file, whatever the chunk size.
    @Test(arguments: [1, 7, 64, 32 << 10]) func linesLongerThanAChunkReadWhole(_ chunkSize: Int) async throws {
        var rng = SplitMix64(seed: UInt64(chunkSize))
        var lines: [String] = []
        for i in 0..<60 {
            let length = i % 10 == 3 ? 0 : Int(rng.next() % 300)
            lines.append(String((0..<length).map { _ in Character(UnicodeScalar(UInt8(97 + rng.next() % 26))) }))
        }
        var text = ""
        for (i, line) in lines.enumerated() { text += line + (i == lines.count - 1 ? "" : (i % 4 == 1 ? "\r\n" : "\n")) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lines-\(UUID().uuidString).jsonl")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        var read: [(String, Int)] = []
        try await JSONLReader.forEachLine(in: file, chunkSize: chunkSize) { line, n in
            read.append((String(decoding: line, as: UTF8.self), n))
        }
        let expected = lines.enumerated().filter { !$0.element.isEmpty }.map { ($0.element, $0.offset + 1) }
        try #require(read.count == expected.count)
        #expect(read.map(\.0) == expected.map(\.0))
        #expect(read.map(\.1) == expected.map(\.1))
    }
}
