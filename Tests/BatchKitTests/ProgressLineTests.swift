import BatchKit
import Testing

/// ``ProgressLine``: the status line fits the width it is given, keeping the most useful fields.
@Suite struct ProgressLineTests {
    static let midRun = BatchProgress(
        succeeded: 2_170, failed: 13, inFlight: 49, total: 30_000, usage: Usage(inputTokens: 1_234_567, outputTokens: 210_000),
        cost: 1.2345, requestsPerSecond: 57.8, eta: .seconds(520), elapsed: .seconds(38))

    @Test func twoHundredColumnsShowEverythingWithTheLongestBar() {
        let line = ProgressLine(Self.midRun, columns: 200)
        #expect(line.fields == [.bar, .count, .succeeded, .failed, .inFlight, .rate, .eta, .tokens, .cost])
        #expect(line.barWidth == 30)
        #expect(line.text.count <= 200)
        #expect(line.text.hasPrefix("[==>                         ]  2183/30000 7%  ok 2170  failed 13  in flight 49  57.8/s  ETA 8m 40s"))
        #expect(line.text.hasSuffix("tokens 1.23M in / 210.0k out  $1.2345"))
    }

    @Test func eightyColumnsDropCostAndTokensAndShortenTheBar() {
        let line = ProgressLine(Self.midRun, columns: 80)
        #expect(line.fields == [.bar, .count, .succeeded, .failed, .inFlight, .rate, .eta])
        #expect(line.barWidth == 10)
        #expect(line.text.count <= 80)
        #expect(line.text == "[>       ]  2183/30000 7%  ok 2170  failed 13  in flight 49  57.8/s  ETA 8m 40s")
    }

    @Test func sixtyColumnsKeepTheBarCountsAndRate() {
        let line = ProgressLine(Self.midRun, columns: 60)
        #expect(line.fields == [.bar, .count, .succeeded, .failed, .rate])
        #expect(line.text.count <= 60)
        #expect(line.barWidth == 16)
    }

    @Test func fortyColumnsKeepTheBarTheCountAndTheFailures() {
        let line = ProgressLine(Self.midRun, columns: 40)
        #expect(line.fields == [.bar, .count, .failed])
        #expect(line.text.count <= 40)
        #expect(line.text == "[>          ]  2183/30000 7%  failed 13")
    }

    /// Every width, several states: the line fits, and a wider terminal never shows less.
    @Test func everyWidthFitsAndWiderNeverShowsLess() {
        let states = [
            Self.midRun,
            BatchProgress(),
            BatchProgress(succeeded: 5, total: nil, requestsPerSecond: 1),
            BatchProgress(succeeded: 99_999_999, failed: 99_999_999, inFlight: 100_000, total: 999_999_999, remoteStatus: "in_progress"),
            BatchProgress(succeeded: 10, total: 10, usage: Usage(inputTokens: 5, outputTokens: 5), cost: 0),
        ]
        for state in states {
            var previous: Set<ProgressLine.Field> = []
            for columns in 1...250 {
                let line = ProgressLine(state, columns: columns)
                #expect(line.text.count <= max(1, columns - 1), "\(columns): \(line.text)")
                let kept = Set(line.fields)
                #expect(kept.isSuperset(of: previous), "\(columns) columns show less than \(columns - 1)")
                previous = kept
            }
        }
    }

    @Test func theBarFillsWithTheFraction() {
        let done = ProgressLine(BatchProgress(succeeded: 10, total: 10), columns: 200)
        #expect(done.text.hasPrefix("[" + String(repeating: "=", count: 28) + "]"))
        let none = ProgressLine(BatchProgress(total: 10), columns: 200)
        #expect(none.text.hasPrefix("[>" + String(repeating: " ", count: 27) + "]"))
    }
}
