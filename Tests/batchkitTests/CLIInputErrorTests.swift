import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// Bad input: a non-zero exit and one line on stderr naming the file, the line and the field.
@Suite(.timeLimit(.minutes(5))) struct CLIInputErrorTests {
    static let good = #"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}"#

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var lines: [String]
        var expected: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "not JSON", lines: [good, #"{"custom_id": "b", oops"#], expected: "in.jsonl:2: not valid JSON"),
        Case(
            name: "missing custom_id",
            lines: [good, good.replacingOccurrences(of: #""custom_id":"a","#, with: "")],
            expected: #"in.jsonl:2: missing field "custom_id""#),
        Case(
            name: "duplicate ids", lines: [good, good.replacingOccurrences(of: #""a""#, with: #""b""#), good],
            expected: #"in.jsonl:3: duplicate custom_id "a" (first on line 1)"#),
        Case(
            name: "missing body.model",
            lines: [good.replacingOccurrences(of: #""model":"gpt-4o-mini","#, with: "")],
            expected: #"in.jsonl:1: missing field "body.model""#),
        Case(
            name: "wrong method", lines: [good.replacingOccurrences(of: "POST", with: "GET")],
            expected: #"in.jsonl:1: field "method" must be "POST""#),
        Case(name: "not an object", lines: ["", "[1, 2]"], expected: "in.jsonl:2: a batch line must be a JSON object"),
    ]

    @Test(arguments: cases)
    func badLineNamesFileLineAndField(_ c: Case) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", c.lines.joined(separator: "\n") + "\n")
        for command in [["run", "in.jsonl", "--output", "out.jsonl"], ["estimate", "in.jsonl"], ["submit", "in.jsonl"]] {
            let result = try await CLI.run(command, in: dir.url)
            #expect(result.status == 1, "\(command[0]): \(result.stderr)")
            #expect(result.errorLines.count == 1, "\(command[0]): \(result.stderr)")
            #expect(result.stderr.contains(c.expected), "\(command[0]): \(result.stderr)")
        }
        // Nothing was written for a bad input.
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.jsonl").path))
    }

    @Test func unknownProviderIsAUsageError() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Self.good + "\n")
        let result = try await CLI.run(["run", "in.jsonl", "--output", "out.jsonl", "--provider", "nope"], in: dir.url)
        #expect(result.status == 2)
        #expect(result.errorLines.count == 1)
        #expect(result.stderr.contains("unknown provider 'nope'"))
    }

    @Test(arguments: [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"), ("gemini", "GEMINI_API_KEY")])
    func missingKeyNamesTheVariable(_ provider: String, _ variable: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Self.good + "\n")
        let result = try await CLI.run(
            ["run", "in.jsonl", "--output", "out.jsonl", "--provider", provider], in: dir.url, environment: [:])
        #expect(result.status == 1)
        #expect(result.errorLines.count == 1)
        #expect(result.stderr.contains("no API key: set \(variable)"))
    }

    @Test func keyFromAnotherVariable() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Self.good + "\n")
        let missing = try await CLI.run(
            ["run", "in.jsonl", "--output", "out.jsonl", "--api-key-env", "MY_KEY"], in: dir.url,
            environment: ["OPENAI_API_KEY": "sk-not-this-one"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no API key: set MY_KEY"))
    }

    @Test func unreadableInputNamesTheFile() async throws {
        let dir = try TempDir()
        let result = try await CLI.run(["run", "missing.jsonl", "--output", "out.jsonl"], in: dir.url)
        #expect(result.status == 1)
        #expect(result.errorLines.count == 1)
        #expect(result.stderr.contains("missing.jsonl: cannot read"))
    }

    @Test func badOptionsAreUsageErrors() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Self.good + "\n")
        for (args, message) in [
            (["run", "in.jsonl"], "missing --output"),
            (["run", "in.jsonl", "--output", "o.jsonl", "--shard", "3/3"], "shard"),
            (["run", "in.jsonl", "--output", "o.jsonl", "--mode", "fast"], "unknown mode 'fast'"),
            (["run", "in.jsonl", "--output", "o.jsonl", "--mode", "native", "--deadline", "soon"], "--deadline"),
            (["run", "in.jsonl", "--output", "o.jsonl", "--concurrency", "0"], "--concurrency"),
        ] {
            let result = try await CLI.run(args, in: dir.url)
            #expect(result.status == 2, "\(args): \(result.stderr)")
            #expect(result.errorLines.count == 1, "\(args): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(args): \(result.stderr)")
        }
    }
}

/// The streamed JSONL input reader behind the tool.
@Suite(.timeLimit(.minutes(5))) struct BatchRequestFileReaderTests {
    @Test(arguments: [1, 7, 64, 1 << 20])
    func readsEveryLineAcrossChunkBoundaries(_ chunkSize: Int) throws {
        let dir = try TempDir()
        // Blank lines, CRLF, and a last line without a newline.
        var text = Fixtures.chatLines(20).replacingOccurrences(of: "\n", with: "\r\n")
        text += "\n  \n"
        text += #"{"custom_id":"last","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"x"}}"#
        try dir.write("in.jsonl", text)
        let reader = BatchRequestFileReader(url: dir.file("in.jsonl"), displayName: "in.jsonl", chunkSize: chunkSize)
        var lines: [BatchRequestFileReader.Line] = []
        try reader.forEach { lines.append($0) }
        #expect(lines.map(\.request.id) == (0..<20).map { "r\($0)" } + ["last"])
        #expect(lines.last?.lineNumber == 23)
        #expect(try reader.validate() == 21)
        if case .embedding = lines.last?.request.body {} else { Issue.record("the last line is an embedding request") }
    }

    @Test func lazySequenceTransformsAndFilters() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(10))
        let reader = BatchRequestFileReader(url: dir.file("in.jsonl"))
        var seen: [String] = []
        for await r in reader.requests(transform: { $0.id.hasSuffix("3") ? nil : $0 }) { seen.append(r.id) }
        #expect(seen == (0..<10).filter { $0 != 3 }.map { "r\($0)" })
    }

    /// The fingerprints `validate` may use: the real one, and coarse ones under which many ids
    /// share a fingerprint (every suspect is then confirmed by reading the file again).
    static let fingerprints: [(String, @Sendable (String) -> UInt64)] = [
        ("hash", { FingerprintSet.fingerprint($0) }),
        ("length", { UInt64($0.utf8.count) }),
        ("constant", { _ in 7 }),
    ]

    @Test(arguments: 0..<3)
    func duplicateNamedWithBothLinesWhateverTheFingerprints(_ which: Int) throws {
        let (_, fingerprint) = Self.fingerprints[which]
        let dir = try TempDir()
        // 300 distinct ids, then r57 again on line 302 (line 301 is blank).
        try dir.write("in.jsonl", Fixtures.chatLines(300) + "\n" + Fixtures.chatLines(60).split(separator: "\n")[57] + "\n")
        let reader = BatchRequestFileReader(url: dir.file("in.jsonl"), displayName: "in.jsonl")
        #expect {
            try reader.validate(fingerprint: fingerprint)
        } throws: { error in
            guard let e = error as? BatchError else { return false }
            return e.code == .validation && e.field == "custom_id"
                && e.message == #"in.jsonl:302: duplicate custom_id "r57" (first on line 58)"#
        }
        // A second repeat of an id is named against its first line, not the second.
        try dir.write("in.jsonl", Fixtures.chatLines(5, prefix: "a") + Fixtures.chatLines(3, prefix: "a"))
        #expect {
            try reader.validate(fingerprint: fingerprint)
        } throws: { error in
            (error as? BatchError)?.message == #"in.jsonl:6: duplicate custom_id "a0" (first on line 1)"#
        }
    }

    @Test(arguments: 0..<3)
    func distinctIDsSharingAFingerprintAreNeverRefused(_ which: Int) throws {
        let (label, fingerprint) = Self.fingerprints[which]
        let dir = try TempDir()
        // Ids that differ only in the last characters, of many lengths.
        let count = which == 0 ? 20_000 : 200
        try dir.write("in.jsonl", Fixtures.chatLines(count, prefix: "id-") + Fixtures.chatLines(count, prefix: "id-x"))
        let reader = BatchRequestFileReader(url: dir.file("in.jsonl"), displayName: "in.jsonl")
        var lines = 0
        let validated = try reader.validate({ _ in lines += 1 }, fingerprint: fingerprint)
        #expect(validated == 2 * count, "\(label)")
        #expect(lines == 2 * count, "\(label)")
    }

    @Test func errorCarriesFieldAndLocation() throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(2) + #"{"custom_id":"x","method":"POST","url":"/v1/chat/completions"}"# + "\n")
        let reader = BatchRequestFileReader(url: dir.file("in.jsonl"), displayName: "in.jsonl")
        #expect {
            try reader.validate()
        } throws: { error in
            guard let e = error as? BatchError else { return false }
            return e.code == .validation && e.field == "body" && e.message == #"in.jsonl:3: missing field "body""#
        }
    }
}
