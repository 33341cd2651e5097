import BatchKit
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
}
