import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// Counts calls per id.
private final class CallCounter: Sendable {
    private let calls = Mutex<[String: Int]>([:])
    func record(_ id: String) { calls.withLock { $0[id, default: 0] += 1 } }
    func count(_ id: String) -> Int { calls.withLock { $0[id] ?? 0 } }
    var total: Int { calls.withLock { $0.values.reduce(0, +) } }
}

/// A minimal processor for these tests: sends requests one at a time through a client.
private struct SequentialProcessor: Processor {
    let client: any ModelClient

    func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        let client = self.client
        return BatchEventStream { sink in
            var summary = BatchSummary()
            for await request in requests {
                let result: BatchResult
                do {
                    result = BatchResult(id: request.id, outcome: .success(try await client.send(request)), attempts: 1)
                } catch {
                    result = BatchResult(id: request.id, outcome: .failure(BatchError(wrapping: error)), attempts: 1)
                }
                if result.isSuccess { summary.succeeded += 1 } else { summary.failed += 1 }
                summary.usage += result.usage
                guard await sink.emit(.item(result)) else { return .failed(.cancelled()) }
            }
            return .completed(summary)
        }
    }
}

private func temporaryJournalURL() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString).jsonl")
}

private func chat(_ id: String) -> BatchRequest {
    BatchRequest(id: id, chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("say \(id)")], maxTokens: 5))
}

private func success(_ id: String, text: String = "ok", input: Int = 10, output: Int = 2) -> BatchResult {
    let raw: JSONValue = [
        "id": .string("chatcmpl-\(id)"), "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [["index": 0, "message": ["role": "assistant", "content": .string(text)], "finish_reason": "stop"]],
        "usage": ["prompt_tokens": .int(input), "completion_tokens": .int(output), "total_tokens": .int(input + output)],
    ]
    let response = ModelResponse(
        text: text, finishReason: .stop, usage: Usage(inputTokens: input, outputTokens: output), model: "gpt-4o-mini",
        raw: raw)
    return BatchResult(id: id, outcome: .success(response), attempts: 1, latency: .milliseconds(12))
}

/// A client answering `"echo <id>"`, failing (not retryable) for ids in `failing`.
private func echoClient(_ counter: CallCounter, failing: Set<String> = []) -> ClosureClient {
    ClosureClient { request in
        counter.record(request.id)
        if failing.contains(request.id) { throw BatchError(.invalidRequest, "bad \(request.id)", httpStatus: 400) }
        return ModelResponse(text: "echo \(request.id)", usage: Usage(inputTokens: 3, outputTokens: 1), model: "gpt-4o-mini")
    }
}

private func fileText(_ url: URL) throws -> String { String(decoding: try Data(contentsOf: url), as: UTF8.self) }

private func lines(_ url: URL) throws -> [String] {
    try fileText(url).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
}

@Suite(.timeLimit(.minutes(5))) struct JournalTests {
    @Test func appendThenReopenSeesIDs() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let journal = try Journal(url: url)
            #expect(journal.count == 0)
            try journal.append(success("a", input: 10, output: 2))
            try journal.append(success("b", input: 5, output: 1))
            try journal.append(BatchResult(id: "c", outcome: .failure(BatchError(.timeout, "slow")), attempts: 3))
            #expect(journal.isFinished("a"))
        }
        let reopened = try Journal(url: url)
        #expect(reopened.repair == nil)
        #expect(reopened.count == 3)
        #expect(reopened.isFinished("a") && reopened.isFinished("b"))
        #expect(!reopened.isFinished("c"))  // failed and retryFailed is the default
        #expect(!reopened.isFinished("zzz"))
        #expect(reopened.finishedIDs == ["a", "b"])
        let totals = reopened.totals
        #expect(totals.succeeded == 2 && totals.failed == 1)
        #expect(totals.usage.inputTokens == 15 && totals.usage.outputTokens == 3)
        let a = try #require(try reopened.result(for: "a"))
        #expect(a.response?.text == "ok")
        #expect(a.route == .realtime)
        #expect(a.latency == .milliseconds(12))
        let c = try #require(try reopened.result(for: "c"))
        #expect(c.error?.code == .timeout)
        #expect(c.attempts == 3)
        // Every line is an OpenAI batch output line.
        for line in try lines(url) {
            let v = try JSONValue(parsing: line)
            #expect(v["id"]?.stringValue?.hasPrefix("batch_req_") == true)
            #expect(v["custom_id"]?.stringValue != nil)
        }
    }

    @Test func linesAcrossReadChunksAndAVeryLongLine() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let filler = String(repeating: "w", count: 900)
        do {
            let journal = try Journal(url: url)
            for i in 0..<2_500 { try journal.append(success("n\(i)", text: filler)) }
            try journal.append(success("huge", text: String(repeating: "h", count: 2_500_000)))  // > 2 read chunks
            try journal.append(success("after"))
        }
        let size = try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        #expect(size > 5_000_000)
        // Cut the file in the middle of the long line's successor and reopen.
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(size - 20))
        try handle.close()
        let journal = try Journal(url: url)
        #expect(journal.repair != nil)
        #expect(journal.count == 2_501)
        #expect(journal.isFinished("n0") && journal.isFinished("n2499") && journal.isFinished("huge"))
        #expect(!journal.isFinished("after"))
        #expect(try journal.result(for: "huge")?.response?.text?.count == 2_500_000)
        #expect(try journal.result(for: "n1234")?.response?.text == filler)
    }

    @Test func failedIDsCountAsFinishedWithoutRetryFailed() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let journal = try Journal(url: url)
            try journal.append(BatchResult(id: "x", outcome: .failure(BatchError(.server, "boom", httpStatus: 500)), attempts: 1))
        }
        #expect(try Journal(url: url, retryFailed: false).isFinished("x"))
        #expect(try !Journal(url: url, retryFailed: true).isFinished("x"))
    }

    @Test func cutLastLineIsRepaired() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let journal = try Journal(url: url)
            try journal.append(success("a"))
            try journal.append(success("b"))
        }
        let good = try Data(contentsOf: url)
        // A crash in the middle of writing the third line.
        let cut = Array(success("c").outputLineBytes().prefix(40))
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: cut)
        try handle.close()

        let journal = try Journal(url: url)
        let repair = try #require(journal.repair)
        #expect(repair.line == 3)
        #expect(repair.removedBytes == cut.count)
        #expect(try Data(contentsOf: url) == good)  // the cut bytes are gone, earlier lines kept
        #expect(journal.isFinished("a") && journal.isFinished("b") && !journal.isFinished("c"))
        // Appending after the repair gives a valid file.
        try journal.append(success("c"))
        journal.close()
        let reopened = try Journal(url: url)
        #expect(reopened.repair == nil)
        #expect(reopened.finishedIDs == ["a", "b", "c"])
    }

    @Test func invalidLastLineWithNewlineIsRepaired() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        do { try Journal(url: url).append(success("a")) }
        let good = try Data(contentsOf: url)
        try (good + Data("{\"id\":\"batch_req_1\",\"cus\n\n".utf8)).write(to: url)
        let journal = try Journal(url: url)
        #expect(journal.repair?.line == 2)
        #expect(try Data(contentsOf: url) == good)
        #expect(journal.finishedIDs == ["a"])
    }

    @Test func zeroFilledTailIsRepaired() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        do { try Journal(url: url).append(success("a")) }
        let good = try Data(contentsOf: url)
        try (good + Data(repeating: 0, count: 300)).write(to: url)
        let journal = try Journal(url: url)
        #expect(journal.repair?.removedBytes == 300)
        #expect(try Data(contentsOf: url) == good)
    }

    @Test func filesThatAreNotJournalsAreNeverTruncated() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        // An OpenAI batch *input* file passed as the output by mistake: valid JSON, one line.
        let input = #"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[]}}"#
        for text in [input, input + "\n", "hello world", "hello\nworld\n"] {
            try Data(text.utf8).write(to: url)
            let error = #expect(throws: BatchError.self) { try Journal(url: url) }
            #expect(error?.message.hasPrefix("\(url.path):1: ") == true, "\(error?.message ?? "")")
            #expect(try fileText(url) == text)
        }
    }

    @Test func completeLastLineWithoutNewlineIsKept() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        do { try Journal(url: url).append(success("a")) }
        try (Data(contentsOf: url) + Data(success("b").outputLineBytes())).write(to: url)
        let journal = try Journal(url: url)
        #expect(journal.repair?.removedBytes == 0)
        #expect(journal.finishedIDs == ["a", "b"])
        try journal.append(success("c"))
        #expect(try lines(url).count == 3)
        #expect(try fileText(url).hasSuffix("}\n"))
    }

    @Test func corruptMiddleLineIsAnErrorNamingFileAndLine() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let journal = try Journal(url: url)
            try journal.append(success("a"))
            try journal.append(success("b"))
            try journal.append(success("c"))
        }
        var text = try lines(url)
        text[1] = "{not json"
        let corrupted = text.joined(separator: "\n") + "\n"
        try Data(corrupted.utf8).write(to: url)
        let error = #expect(throws: BatchError.self) { try Journal(url: url) }
        #expect(error?.code == .validation)
        #expect(error?.message.hasPrefix("\(url.path):2:") == true)
        // Nothing was truncated.
        #expect(try fileText(url) == corrupted)

        // A valid JSON line that is not an output line is reported the same way.
        text[1] = #"{"custom":"x"}"#
        try Data((text.joined(separator: "\n") + "\n").utf8).write(to: url)
        let error2 = #expect(throws: BatchError.self) { try Journal(url: url) }
        #expect(error2?.message.contains("\(url.path):2:") == true)
        #expect(error2?.message.contains("custom_id") == true)
    }

    @Test func secondOpenOfTheSameFileIsRefused() throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let journal = try Journal(url: url)
        let error = #expect(throws: BatchError.self) { try Journal(url: url) }
        #expect(error?.code == .io)
        journal.close()
        #expect(throws: BatchError.self) { try journal.append(success("a")) }
        _ = try Journal(url: url)  // released by close()
    }

    @Test(arguments: [Journal.Durability.flush, .fsync])
    func rerunSkipsFinishedIDsAndRerunsFailedOnes(durability: Journal.Durability) async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let ids = (0..<20).map { "r\($0)" }
        let requests = ids.map(chat)

        let first = CallCounter()
        do {
            let journal = try Journal(url: url, durability: durability)
            let processor = SequentialProcessor(client: echoClient(first, failing: ["r3", "r7"])).journaled(journal)
            let response = try await processor.process(requests)
            #expect(response.summary.succeeded == 18 && response.summary.failed == 2)
        }
        #expect(first.total == 20)

        // Rerun: only the failed ids are sent again, and now they succeed.
        let second = CallCounter()
        do {
            let journal = try Journal(url: url, durability: durability)
            let processor = SequentialProcessor(client: echoClient(second)).journaled(journal)
            let response = try await processor.process(requests)
            #expect(response.results.map(\.id) == ["r3", "r7"])
            #expect(response.summary.succeeded == 2)
            #expect(journal.skippedCount == 18)
        }
        #expect(second.total == 2)
        #expect(second.count("r3") == 1 && second.count("r7") == 1 && second.count("r0") == 0)

        // Third run: nothing left to do, the client is never called.
        let third = CallCounter()
        let journal = try Journal(url: url, durability: durability)
        let response = try await SequentialProcessor(client: echoClient(third)).journaled(journal).process(requests)
        #expect(response.results.isEmpty)
        #expect(third.total == 0)

        // Each id exactly once in the journal's view; the last line per id wins.
        let results = try journal.results()
        #expect(results.count == 20)
        #expect(Set(results.map(\.id)) == Set(ids))
        #expect(results.allSatisfy { $0.isSuccess })
        #expect(try lines(url).count == 22)  // r3 and r7 have a failed line and a later success line
        #expect(journal.lineCount == 22)

        // Compaction leaves each id exactly once in the file, and the journal usable.
        try journal.compact()
        let compacted = try lines(url)
        #expect(compacted.count == 20)
        let fileIDs = try compacted.map { try #require(try JSONValue(parsing: $0)["custom_id"]?.stringValue) }
        #expect(fileIDs.count == Set(fileIDs).count && Set(fileIDs) == Set(ids))
        #expect(try journal.result(for: "r3")?.isSuccess == true)
        #expect(try journal.results().count == 20)
        try journal.append(success("extra"))
        #expect(journal.lineCount == 21)
        journal.close()
        let reopened = try Journal(url: url)
        #expect(reopened.repair == nil && reopened.count == 21 && reopened.lineCount == 21)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
            .filter { $0.contains(url.lastPathComponent + ".compact") }
        #expect(leftovers.isEmpty)
    }

    @Test func failedIDsAreNotRerunWithoutRetryFailed() async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let requests = ["a", "b", "c"].map(chat)
        do {
            let journal = try Journal(url: url)
            _ = try await SequentialProcessor(client: echoClient(CallCounter(), failing: ["b"])).journaled(journal)
                .process(requests)
        }
        let counter = CallCounter()
        let journal = try Journal(url: url, retryFailed: false)
        _ = try await SequentialProcessor(client: echoClient(counter)).journaled(journal).process(requests)
        #expect(counter.total == 0)
    }

    @Test func journalLineIsWrittenBeforeTheItemIsReported() async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let journal = try Journal(url: url)
        let processor = SequentialProcessor(client: echoClient(CallCounter())).journaled(journal)
        var seen = 0
        var events: [String] = []
        for await event in processor.processAsync((0..<10).map { chat("id-\($0)") }) {
            switch event {
            case .started: events.append("started")
            case .item(let result):
                // Read the file from disk, independently of the Journal object.
                let onDisk = try fileText(url)
                #expect(onDisk.contains(#""custom_id":"\#(result.id)""#))
                seen += 1
            case .completed: events.append("completed")
            default: break
            }
        }
        #expect(seen == 10)
        #expect(events == ["started", "completed"])
    }

    @Test func replayFinishedReportsEveryRequestOnce() async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let requests = (0..<6).map { chat("q\($0)") }
        do {
            let journal = try Journal(url: url)
            _ = try await SequentialProcessor(client: echoClient(CallCounter())).journaled(journal)
                .process(Array(requests.prefix(4)))
        }
        let counter = CallCounter()
        let journal = try Journal(url: url)
        let response = try await SequentialProcessor(client: echoClient(counter))
            .journaled(journal, replayFinished: true).process(requests)
        #expect(counter.total == 2)
        #expect(response.results.map(\.id) == requests.map(\.id))
        #expect(response.results.allSatisfy { $0.response?.text == "echo \($0.id)" })
        #expect(response.summary.succeeded == 2)  // the summary counts this run's work
    }

    @Test func breakingOutStopsTheBaseRun() async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let journal = try Journal(url: url)
        let counter = CallCounter()
        let baseEnd = RunEnd()
        let processor = EndObservedProcessor(base: SequentialProcessor(client: echoClient(counter)), end: baseEnd).journaled(journal)
        var items = 0
        for await event in processor.processAsync((0..<10_000).map { chat("b\($0)") }) {
            if case .item = event {
                items += 1
                if items == 3 { break }
            }
        }
        let atBreak = counter.total
        // The end signal: the base run's body returned. A base run that went on after the break
        // would end only after the whole input, and the counts below would show it.
        guard case .failed(let error) = await baseEnd.wait() else {
            Issue.record("the base run should end cancelled, not complete")
            return
        }
        #expect(error.code == .cancelled)
        // Buffers may let a few more through (at most the base stream's buffer and the call in
        // flight after the break), never the whole input.
        #expect(counter.total <= atBreak + 65, "\(counter.total - atBreak) calls after the break")
        #expect(counter.total < 500)
        #expect(journal.count >= 3)
        #expect(journal.count <= counter.total)
    }
}

@Suite(.timeLimit(.minutes(5))) struct JournalConcurrentTests {
    @Test func concurrentProcessorResumesEachIDExactlyOnce() async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let ids = (0..<300).map { "c\($0)" }
        let requests = ids.map(chat)
        let configuration = ConcurrentProcessor<ContinuousClock>.Configuration(maxConcurrency: 8, retry: RetryPolicy(maxAttempts: 1))

        // First run: stopped by the consumer after 100 items (as a crash would stop it).
        let first = CallCounter()
        do {
            let journal = try Journal(url: url)
            let processor = ConcurrentProcessor(client: echoClient(first, failing: ["c5"]), configuration: configuration)
                .journaled(journal)
            var items = 0
            for await event in processor.processAsync(requests) {
                if case .item(let result) = event {
                    #expect(try fileText(url).contains(#""custom_id":"\#(result.id)""#))
                    items += 1
                    if items == 100 { break }
                }
            }
            #expect(journal.count >= 100)
            // The cancelled run may still be winding down and holding the journal: release the
            // file lock now rather than when the last reference goes.
            journal.close()
        }

        // Second run: finishes the rest. Journaled successes are never sent again; the failed id is.
        let second = CallCounter()
        let journal = try Journal(url: url)
        let done = journal.finishedIDs
        #expect(!done.contains("c5"))
        let processor = ConcurrentProcessor(client: echoClient(second), configuration: configuration).journaled(journal)
        let response = try await processor.process(requests)
        #expect(response.results.count == 300 - done.count)
        #expect(second.total == 300 - done.count)
        #expect(done.allSatisfy { second.count($0) == 0 })
        #expect(second.count("c5") == 1)
        #expect(journal.skippedCount == done.count)

        // Every id exactly once in the journal's view, all succeeded.
        let results = try journal.results()
        #expect(results.count == 300)
        #expect(Set(results.map(\.id)) == Set(ids))
        #expect(results.allSatisfy { $0.isSuccess })
        #expect(journal.totals.succeeded == 300)
    }

    @Test func replayWithConcurrentProcessorGivesOneItemPerRequest() async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let requests = (0..<120).map { chat("p\($0)") }
        let configuration = ConcurrentProcessor<ContinuousClock>.Configuration(maxConcurrency: 4)
        do {
            let journal = try Journal(url: url)
            _ = try await ConcurrentProcessor(client: echoClient(CallCounter()), configuration: configuration)
                .journaled(journal).process(Array(requests.prefix(70)))
            journal.close()
        }
        let counter = CallCounter()
        let journal = try Journal(url: url)
        let response = try await ConcurrentProcessor(client: echoClient(counter), configuration: configuration)
            .journaled(journal, replayFinished: true).process(requests)
        #expect(counter.total == 50)
        #expect(response.results.map(\.id) == requests.map(\.id))
        #expect(response.results.allSatisfy { $0.response?.text == "echo \($0.id)" })
        #expect(try lines(url).count == 120)
    }
}

@Suite struct OutputLineTests {
    @Test func successRoundTrip() throws {
        let original = success("s1", text: "hello", input: 7, output: 3)
        let line = original.outputLine()
        #expect(line["custom_id"] == "s1")
        #expect(line["response"]?["status_code"] == 200)
        #expect(line["response"]?["body"]?["choices"]?[0]?["message"]?["content"] == "hello")
        #expect(line["error"] == .null)
        let restored = try BatchResult(outputLine: line)
        #expect(restored.id == "s1")
        #expect(restored.response?.text == "hello")
        #expect(restored.response?.finishReason == .stop)
        #expect(restored.usage == Usage(inputTokens: 7, outputTokens: 3))
        #expect(restored.route == .realtime)
        // The byte form parses to the same line.
        let bytes = original.outputLineBytes()
        #expect(String(decoding: bytes.prefix(17), as: UTF8.self) == #"{"id":"batch_req_"#)
        let parsed = try JSONValue(parsing: bytes[...])
        #expect(parsed["response"] == line["response"])
    }

    @Test func responseWithoutRawBodyGetsAnOpenAIBody() throws {
        let r = BatchResult(
            id: "e", outcome: .success(ModelResponse(embeddings: [[0.5, -1]], usage: Usage(inputTokens: 4), model: "m")),
            attempts: 1)
        let line = r.outputLine()
        #expect(line["response"]?["body"]?["object"] == "list")
        let restored = try BatchResult(outputLine: line)
        #expect(restored.response?.embeddings == [[0.5, -1]])
        #expect(restored.usage.inputTokens == 4)
    }

    @Test func httpFailureRoundTrip() throws {
        let error = BatchError(.rateLimited, "slow down", httpStatus: 429, providerType: "rate_limit_error")
        let line = BatchResult(id: "f", outcome: .failure(error), attempts: 4, route: .realtime).outputLine()
        #expect(line["response"]?["status_code"] == 429)
        #expect(line["response"]?["body"]?["error"]?["message"] == "slow down")
        #expect(line["error"] == .null)
        let restored = try BatchResult(outputLine: line)
        #expect(restored.error?.code == .rateLimited)
        #expect(restored.error?.httpStatus == 429)
        #expect(restored.error?.message == "slow down")
        #expect(restored.error?.providerType == "rate_limit_error")
        #expect(restored.attempts == 4)
    }

    @Test func failureWithoutStatusRoundTrip() throws {
        let line = BatchResult(id: "x", outcome: .failure(BatchError(.expired, "the batch expired")), attempts: 0, route: .batch)
            .outputLine()
        #expect(line["response"] == .null)
        #expect(line["error"]?["code"] == "batch_expired")
        let restored = try BatchResult(outputLine: line)
        #expect(restored.error?.code == .expired)
        #expect(restored.error?.isRetryable == true)
        #expect(restored.route == .batch)

        let validation = BatchResult(id: "v", outcome: .failure(.validation("no", field: "messages")), attempts: 0, route: .none)
        let back = try BatchResult(outputLine: validation.outputLine())
        #expect(back.error?.code == .validation)
        #expect(back.error?.field == "messages")
        #expect(back.route == .none)
    }

    @Test func plainOpenAIOutputLinesAreRead() throws {
        // As downloaded from OpenAI: no `batchkit` member.
        let ok = try JSONValue(parsing: #"""
            {"id":"batch_req_1","custom_id":"r1","response":{"status_code":200,"request_id":"abc","body":{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4}}}},"error":null}
            """#)
        let r = try BatchResult(outputLine: ok)
        #expect(r.response?.text == "Paris")
        #expect(r.route == .batch)
        #expect(r.usage == Usage(inputTokens: 12, outputTokens: 1, cachedInputTokens: 4).asBatch)
        let expired = try JSONValue(parsing: #"{"id":"batch_req_2","custom_id":"r2","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}"#)
        #expect(try BatchResult(outputLine: expired).error?.code == .expired)
        let failed = try JSONValue(parsing: #"{"id":"batch_req_3","custom_id":"r3","response":{"status_code":400,"request_id":"x","body":{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":null}}},"error":null}"#)
        let f = try BatchResult(outputLine: failed)
        #expect(f.error?.code == .invalidRequest)
        #expect(f.error?.field == "messages")
    }

    @Test func anthropicAndGeminiBodiesAreParsed() throws {
        let anthropic: JSONValue = [
            "id": "msg_1", "type": "message", "model": "claude-haiku-4-5", "stop_reason": "max_tokens",
            "content": [["type": "text", "text": "Hi"], ["type": "text", "text": " there"]],
            "usage": ["input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 0],
        ]
        let a = ModelResponse.parsing(providerBody: anthropic)
        #expect(a.text == "Hi there")
        #expect(a.finishReason == .length)
        #expect(a.usage == Usage(inputTokens: 30, outputTokens: 5, cachedInputTokens: 20))
        #expect(a.model == "claude-haiku-4-5")

        let gemini: JSONValue = [
            "candidates": [["content": ["parts": [["text": "Bonjour"]], "role": "model"], "finishReason": "STOP"]],
            "usageMetadata": ["promptTokenCount": 8, "candidatesTokenCount": 2, "thoughtsTokenCount": 3],
            "modelVersion": "gemini-2.5-flash",
        ]
        let g = ModelResponse.parsing(providerBody: gemini)
        #expect(g.text == "Bonjour")
        #expect(g.finishReason == .stop)
        #expect(g.usage == Usage(inputTokens: 8, outputTokens: 5, reasoningTokens: 3))
        #expect(g.model == "gemini-2.5-flash")

        // A journaled Anthropic result keeps its normalised usage through the `batchkit` member.
        let result = BatchResult(id: "an", outcome: .success(a), attempts: 1, route: .batch)
        let back = try BatchResult(outputLine: result.outputLine())
        #expect(back.usage == a.usage)
        #expect(back.response?.text == "Hi there")
    }

    @Test func bodiesInTheLineFormatRecordNoSecondCopyOfTheirFields() throws {
        let line = success("s1", text: "hello").outputLine()
        #expect(line["batchkit"]?["fields"] == [:])
        // A decoder's reading that the body alone does not give (a refusal) is recorded.
        var refused = ModelResponse(
            text: nil, finishReason: .contentFilter, model: "m",
            raw: ["object": "chat.completion", "model": "m", "choices": [["index": 0, "message": ["role": "assistant", "content": nil, "refusal": "no"], "finish_reason": "stop"]]])
        refused.usage = Usage(inputTokens: 3)
        let refusedLine = BatchResult(id: "r", outcome: .success(refused), attempts: 1).outputLine()
        #expect(refusedLine["batchkit"]?["fields"] == ["finish_reason": "content_filter"])
        #expect(try BatchResult(outputLine: refusedLine).response?.finishReason == .contentFilter)
        // A client's own fields over a body of another shape come back as they were.
        let other = ModelResponse(text: "T", finishReason: "custom", model: "x", raw: ["anything": [1, 2]])
        let back = try BatchResult(outputLine: BatchResult(id: "o", outcome: .success(other), attempts: 1).outputLine())
        #expect(back.response?.text == "T")
        #expect(back.response?.finishReason == "custom")
        #expect(back.response?.model == "x")
        #expect(back.response?.raw == other.raw)
    }

    @Test func linesWrittenBeforeFieldsWereRecordedStillRead() throws {
        // As BatchKit wrote them before `batchkit.fields` existed: another provider's body, usage
        // in the member.
        let message = try JSONValue(parsing: #"""
            {"id":"batch_req_1","custom_id":"a","response":{"status_code":200,"request_id":"msg_1","body":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Hi"}],"stop_reason":"model_context_window_exceeded","usage":{"input_tokens":10,"output_tokens":5}}},"error":null,"batchkit":{"route":"realtime","attempts":2,"usage":{"input":10,"output":5},"latency_ms":12}}
            """#)
        let a = try BatchResult(outputLine: message)
        #expect(a.response?.text == "Hi")
        #expect(a.response?.finishReason == .length)
        #expect(a.response?.model == "claude-haiku-4-5")
        #expect(a.usage == Usage(inputTokens: 10, outputTokens: 5))
        #expect(a.attempts == 2)
        let candidate = try JSONValue(parsing: #"""
            {"id":"batch_req_2","custom_id":"g","response":{"status_code":200,"request_id":"r-1","body":{"candidates":[{"content":{"parts":[{"text":"Bonjour"}],"role":"model"},"finishReason":"MALFORMED_FUNCTION_CALL"}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":2,"toolUsePromptTokenCount":5},"modelVersion":"gemini-2.5-flash","responseId":"r-1"}},"error":null,"batchkit":{"route":"batch","attempts":1,"usage":{"input":13,"output":2,"batch_input":13,"batch_output":2},"latency_ms":0}}
            """#)
        let g = try BatchResult(outputLine: candidate)
        #expect(g.response?.text == "Bonjour")
        #expect(g.response?.finishReason == .toolCalls)
        #expect(g.response?.model == "gemini-2.5-flash")
        #expect(g.usage == Usage(inputTokens: 13, outputTokens: 2).asBatch)
    }

    @Test func malformedLinesAreRejectedNamingTheField() {
        #expect(throws: BatchError.self) { try BatchResult(outputLine: ["response": .null]) }
        let e = #expect(throws: BatchError.self) {
            try BatchResult(outputLine: ["custom_id": "a", "response": ["body": [:]]])
        }
        #expect(e?.field == "response.status_code")
    }
}

@Suite(.timeLimit(.minutes(5)))
struct JournalNativeTests {
    @Test func nativeRerunSubmitsOnlyWhatIsNotFinished() async throws {
        let url = temporaryJournalURL()
        defer { try? FileManager.default.removeItem(at: url) }
        let requests = (0..<12).map { chatRequest("j\($0)") }
        do {
            let clock = ManualClock()
            let backend = FakeBackend(failing: { $0 == "j3" || $0 == "j8" })
            let journal = try Journal(url: url)
            let events = await runNative(
                NativeBatchProcessor(backend: backend, clock: clock).journaled(journal).processAsync(requests), clock: clock)
            #expect(backend.submitted.flatMap { $0 }.count == 12)
            #expect(events.items.count == 12)
            #expect(journal.count == 12)
            journal.close()
        }
        let clock = ManualClock()
        let backend = FakeBackend()
        let journal = try Journal(url: url)
        let events = await runNative(
            NativeBatchProcessor(backend: backend, clock: clock).journaled(journal).processAsync(requests), clock: clock)
        // Only the two failures are submitted again; the batch route and usage are journaled.
        #expect(backend.submitted.flatMap { $0 }.sorted() == ["j3", "j8"])
        #expect(events.items.map(\.id).sorted() == ["j3", "j8"])
        #expect(journal.finishedIDs.count == 12)
        let restored = try #require(try journal.result(for: "j0"))
        #expect(restored.route == .batch)
        #expect(restored.usage.batchInputTokens == 10)
    }
}
