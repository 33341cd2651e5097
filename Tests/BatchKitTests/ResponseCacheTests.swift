@testable import BatchKit
import Foundation
import Synchronization
import Testing

/// A clock for cache entries: each call is one second later than the one before, so the order of
/// stores and hits is the order of their modification times.
final class SteppingTime: Sendable {
    private let seconds = Mutex<Double>(1_700_000_000)
    func now() -> Date { seconds.withLock { $0 += 1; return Date(timeIntervalSince1970: $0) } }
}

/// A directory for one test, removed at the end.
final class CacheDir: Sendable {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-cache-\(UUID().uuidString)")
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// The response cache: keys (what makes two requests identical), the file-backed cache (hits,
/// atomic writes shared by concurrent writers, the size bound) and ``CachingProcessor``.
@Suite(.timeLimit(.minutes(5))) struct ResponseCacheTests {
    // MARK: - SHA-256

    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256MatchesTheStandardVectors(_ message: String, _ hex: String) {
        #expect(SHA256.hex(Array(message.utf8)) == hex)
    }

    @Test func sha256OfAMillionAs() {
        #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // MARK: - Keys

    static func line(_ text: String) throws -> BatchRequest { try BatchRequest(batchLine: Array(text.utf8)) }

    @Test func idMetadataAndMemberOrderDoNotCount() throws {
        let a = try Self.line(#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1,"max_tokens":5}}"#)
        var b = try Self.line(#"{"url":"/v1/chat/completions","custom_id":"b","body":{"max_tokens":5,"temperature":1.0,"messages":[{"content":"hi","role":"user"}],"model":"m"},"method":"POST"}"#)
        b.metadata = ["team": "x"]
        #expect(ResponseCacheKey(provider: "openai", request: a) == ResponseCacheKey(provider: "openai", request: b))
        #expect(ResponseCacheKey(provider: "openai", request: a).digest.count == 64)
    }

    @Test func rawBodiesAreCanonicalisedAndTheirMetadataMemberIgnored() {
        let a: JSONValue = ["model": "m", "input": "x", "temperature": .double(0), "metadata": ["run": "1"]]
        let b: JSONValue = ["input": "x", "model": "m", "temperature": .int(0)]
        #expect(ResponseCacheKey(provider: "p", endpoint: "/v1/responses", body: a) == ResponseCacheKey(provider: "p", endpoint: "/v1/responses", body: b))
    }

    @Test func everythingElseCounts() throws {
        let base = chatRequest("a", text: "hi")
        let key = ResponseCacheKey(provider: "openai", request: base)
        var hotter = base
        if case .chat(var c) = hotter.body { c.temperature = 0.7; hotter.body = .chat(c) }
        let variants: [ResponseCacheKey] = [
            ResponseCacheKey(provider: "anthropic", request: base),
            ResponseCacheKey(provider: "openai", request: chatRequest("a", text: "hi!")),
            ResponseCacheKey(provider: "openai", request: chatRequest("a", text: "hi", maxTokens: 11)),
            ResponseCacheKey(provider: "openai", request: chatRequest("a", text: "hi", model: "other")),
            ResponseCacheKey(provider: "openai", request: hotter),
            ResponseCacheKey(provider: "openai", request: BatchRequest(id: "a", embedding: EmbeddingRequest(model: "test-model", inputs: ["hi"]))),
            ResponseCacheKey(provider: "openai", endpoint: "/v1/other", body: BatchLine.body(of: base.body, cacheMarkers: false)),
        ]
        for v in variants { #expect(v != key) }
        #expect(Set(variants).count == variants.count)
    }

    // MARK: - FileResponseCache

    @Test func storedAnswersAreFoundAndOthersMiss() async throws {
        let dir = CacheDir()
        let cache = try FileResponseCache(directory: dir.url)
        let key = ResponseCacheKey(provider: "p", request: chatRequest("a"))
        #expect(await cache.lookup(key) == nil)
        await cache.store(okResponse("the answer", input: 7, output: 3), for: key)
        let hit = try #require(await cache.lookup(key))
        #expect(hit.text == "the answer")
        #expect(hit.usage.inputTokens == 7 && hit.usage.outputTokens == 3)
        #expect(hit.model == "test-model")
        #expect(await cache.lookup(ResponseCacheKey(provider: "p", request: chatRequest("a", text: "else"))) == nil)
        #expect(FileManager.default.fileExists(atPath: cache.fileURL(for: key).path))
        // Another object on the same directory (another process) sees it.
        #expect(try await FileResponseCache(directory: dir.url).lookup(key)?.text == "the answer")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.appendingPathComponent("tmp").path).isEmpty)
    }

    @Test func aDamagedEntryIsAMissAndIsRemoved() async throws {
        let dir = CacheDir()
        let cache = try FileResponseCache(directory: dir.url)
        let key = ResponseCacheKey(provider: "p", request: chatRequest("a"))
        await cache.store(okResponse(), for: key)
        try Data("{\"format\":\"batchkit-response-cache\",\"ver".utf8).write(to: cache.fileURL(for: key))
        #expect(await cache.lookup(key) == nil)
        #expect(!FileManager.default.fileExists(atPath: cache.fileURL(for: key).path))
    }

    @Test func concurrentWritersLeaveWholeEntries() async throws {
        let dir = CacheDir()
        let caches = [try FileResponseCache(directory: dir.url), try FileResponseCache(directory: dir.url)]
        let keys = (0..<40).map { ResponseCacheKey(provider: "p", request: chatRequest("r", text: "q\($0)")) }
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    // Every writer stores every key (the same keys at once), with its own text.
                    for (i, key) in keys.enumerated() {
                        await caches[writer % 2].store(okResponse("answer \(i) from \(writer)"), for: key)
                    }
                }
            }
        }
        for (i, key) in keys.enumerated() {
            let text = try #require(await caches[0].lookup(key)?.text, "entry \(i)")
            #expect(text.hasPrefix("answer \(i) from "))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.appendingPathComponent("tmp").path).isEmpty)
    }

    @Test func theLeastRecentlyUsedEntriesGoFirstAndTheBoundHolds() async throws {
        let dir = CacheDir()
        let time = SteppingTime()
        let probe = try FileResponseCache(directory: dir.url, maxBytes: .max, now: { time.now() })
        let sampleKey = ResponseCacheKey(provider: "p", request: chatRequest("x", text: "sample"))
        await probe.store(okResponse("answer 00"), for: sampleKey)
        let entrySize = probe.currentSize()
        try FileManager.default.removeItem(at: probe.fileURL(for: sampleKey))
        #expect(entrySize > 100)

        // Room for five entries and a half.
        let cache = try FileResponseCache(directory: dir.url, maxBytes: entrySize * 11 / 2, now: { time.now() })
        let keys = (0..<10).map { ResponseCacheKey(provider: "p", request: chatRequest("r", text: "q\($0)")) }
        for i in 0..<5 { await cache.store(okResponse("answer 0\(i)"), for: keys[i]) }
        #expect(cache.currentSize() == entrySize * 5)
        // Using entry 0 makes entry 1 the least recently used.
        #expect(await cache.lookup(keys[0]) != nil)
        await cache.store(okResponse("answer 05"), for: keys[5])
        #expect(cache.currentSize() <= cache.maxBytes)
        #expect(await cache.lookup(keys[1]) == nil, "the least recently used entry stays")
        #expect(await cache.lookup(keys[0]) != nil, "a recently used entry was evicted")
        #expect(await cache.lookup(keys[5]) != nil)
        for i in 6..<10 {
            await cache.store(okResponse("answer 0\(i)"), for: keys[i])
            #expect(cache.currentSize() <= cache.maxBytes)
        }
        #expect(await cache.lookup(keys[9]) != nil)
        #expect(await cache.lookup(keys[2]) == nil)
    }

    @Test func anAnswerLargerThanTheBoundIsNotStored() async throws {
        let dir = CacheDir()
        let cache = try FileResponseCache(directory: dir.url, maxBytes: 50)
        let key = ResponseCacheKey(provider: "p", request: chatRequest("a"))
        await cache.store(okResponse(String(repeating: "x", count: 200)), for: key)
        #expect(await cache.lookup(key) == nil)
        #expect(cache.currentSize() == 0)
    }

    // MARK: - CachingProcessor

    static func client(_ probe: Probe, failing: Set<String> = []) -> ClosureClient {
        ClosureClient { request in
            probe.enter(request.id)
            defer { probe.leave() }
            guard case .chat(let chat) = request.body else { throw BatchError(.validation, "not a chat") }
            let text = chat.messages.first?.content.text ?? ""
            if failing.contains(text) { throw BatchError(.invalidRequest, "refused \(text)") }
            return okResponse("echo \(text)", input: 10, output: 5)
        }
    }

    @Test func aRerunIsAnsweredFromTheCacheAtNoCost() async throws {
        let dir = CacheDir()
        let cache = try FileResponseCache(directory: dir.url)
        let probe = Probe()
        let prices = PriceTable(["test-model": .init(inputPerMillion: 1, outputPerMillion: 2)])
        let processor = ConcurrentProcessor(client: Self.client(probe), configuration: .init(maxConcurrency: 4, priceTable: prices))
            .cached(cache, provider: "test")
        let first = try await processor.process((0..<6).map { chatRequest("a\($0)", text: "q\($0)") })
        #expect(probe.calls == 6)
        #expect(first.results.allSatisfy { $0.route == .realtime && $0.isSuccess })

        // The same questions under other ids, and one new one.
        let second = try await processor.process((0..<7).map { chatRequest("b\($0)", text: "q\($0)") })
        #expect(probe.calls == 7, "only the new question reached the client")
        try #require(second.results.count == 7)
        for r in second.results.prefix(6) {
            #expect(r.route == .cache)
            #expect(r.cost == 0 && r.usage == .zero && r.attempts == 0)
            #expect(r.response?.text == "echo q\(r.id.dropFirst())")
        }
        #expect(second.results[6].route == .realtime)
        #expect(second.summary.succeeded == 7)
    }

    @Test func failuresAreNotStored() async throws {
        let dir = CacheDir()
        let cache = try FileResponseCache(directory: dir.url)
        let probe = Probe()
        let processor = ConcurrentProcessor(client: Self.client(probe, failing: ["bad"]), configuration: .init(maxConcurrency: 1))
            .cached(cache, provider: "test")
        let requests = [chatRequest("a", text: "good"), chatRequest("b", text: "bad")]
        let first = try await processor.process(requests)
        #expect(first.summary.succeeded == 1 && first.summary.failed == 1)
        let second = try await processor.process(requests)
        #expect(probe.calls == 3, "the failed request is asked again")
        #expect(second["a"]?.route == .cache)
        #expect(second["b"]?.route == .realtime && second["b"]?.isSuccess == false)
    }

    @Test func aCachedResultReadsBackFromItsOutputLine() throws {
        var result = BatchResult(id: "a", outcome: .success(okResponse("x")), attempts: 0, usage: .zero, route: .cache)
        result.cost = 0
        let back = try BatchResult(outputLine: result.outputLine())
        #expect(back.route == .cache)
        #expect(back.cost == 0)
        #expect(back.response?.text == "x")
    }
}
