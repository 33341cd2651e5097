import BatchKit
import Foundation

/// A batch's requests as the Anthropic and Gemini emulators keep them: one JSON line per request
/// in an ``EmulatorBlob`` (the uploaded file's own blob when the batch reads a file, never a
/// copy), how many there are, and the few that are invalid with why. Results are made by reading
/// the lines again, so a queued batch costs its bytes (on disk once large), not parsed values.
struct EmulatorBatchInput: Sendable {
    /// One request per non-empty line.
    let lines: EmulatorBlob
    let count: Int
    /// Why a request is invalid (answered with a per-item error), by position.
    let problems: [Int: String]
    /// The positions of `problems`, in order.
    private let problemPositions: [Int]

    /// Requests already stored as lines (an uploaded file), `count` of them.
    init(sharing lines: EmulatorBlob, count: Int, problems: [Int: String]) {
        self.lines = lines
        self.count = count
        self.problems = problems
        problemPositions = problems.keys.sorted()
    }

    /// Invalid requests among the first `n`.
    func problemCount(inFirst n: Int) -> Int {
        var low = 0, high = problemPositions.count
        while low < high {
            let mid = (low + high) / 2
            if problemPositions[mid] < n { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Calls `body` with the position and parsed line of each request `include` accepts, in
    /// input order (lines it does not accept are not parsed).
    func forEach(where include: (Int) -> Bool = { _ in true }, _ body: (Int, JSONValue) -> Void) {
        var position = 0
        lines.forEachLine { buf, _ in
            defer { position += 1 }
            guard include(position) else { return }
            body(position, (try? JSONValue(parsing: buf)) ?? .null)
        }
    }

    /// Writes requests as lines, piece by piece (to disk once large).
    struct Builder {
        private let writer = EmulatorBlob.Writer()
        private var line: [UInt8] = []
        private(set) var count = 0
        private var problems: [Int: String] = [:]

        init() {}

        /// Adds one request; `problem` says why it is invalid.
        mutating func append(_ request: JSONValue, problem: String?) {
            if let problem { problems[count] = problem }
            count += 1
            line.removeAll(keepingCapacity: true)
            request.write(into: &line)
            line.append(0x0A)
            writer.append(line)
        }

        func finish() -> EmulatorBatchInput {
            EmulatorBatchInput(sharing: writer.finish(), count: count, problems: problems)
        }
    }
}

/// A results file written line by line into a blob (on disk once large), answered as a stored
/// file: never whole in memory as a second copy.
struct EmulatorResultsWriter {
    private let writer = EmulatorBlob.Writer()
    private var line: [UInt8] = []

    init() {}

    /// Appends one line: `write` fills it (without the newline), `cut` then shortens it (a
    /// malformed-line fault).
    mutating func appendLine(_ write: (inout [UInt8]) -> Void, cut: ((Int) -> Int)? = nil) {
        line.removeAll(keepingCapacity: true)
        write(&line)
        if let cut { line.removeSubrange(min(line.count, cut(line.count))...) }
        line.append(0x0A)
        writer.append(line)
    }

    func finish() -> EmulatorBlob { writer.finish() }
}
