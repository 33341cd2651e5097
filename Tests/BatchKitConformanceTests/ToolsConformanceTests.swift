import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// Tool calling, prompt caching and per-request metadata, the same for every provider, real time
/// and native batch, over every wire.
@Suite(.timeLimit(.minutes(5)))
struct ToolsConformanceTests {
    static let weather = Tool(
        name: "get_weather", description: "Current weather of a city",
        parameters: ["type": "object", "properties": ["city": ["type": "string"], "days": ["type": "integer"]], "required": ["city"]])
    static let clock = Tool(name: "get_time", description: "Current time", parameters: ["type": "object", "properties": [:]])

    /// A chat with two tools and the given choice.
    static func toolRequest(_ provider: Provider, _ id: String, choice: ToolChoice, metadata: [String: String] = [:]) -> BatchRequest {
        BatchRequest(
            id: id,
            chat: ChatRequest(
                model: provider.model, messages: [.user("Weather in Paris for \(id)?")], maxTokens: 200,
                tools: [weather, clock], toolChoice: choice),
            metadata: metadata)
    }

    /// One run of `requests` through the provider in real time or native batch.
    static func run(_ provider: Provider, _ h: EmulatorHarness, native: Bool, _ requests: [BatchRequest]) async -> RunLog {
        if native { return await ClockDriver(h.clock).log(provider.processor(h).processAsync(requests)) }
        let processor = ConcurrentProcessor(client: provider.client(h), configuration: .init(maxConcurrency: 1), clock: h.clock)
        return await ClockDriver(h.clock).log(processor.processAsync(requests))
    }

    /// A required or named tool choice: every answer is a call of a declared tool with object
    /// arguments, finish reason `toolCalls`, and the output line's `batchkit.tool_calls` holds it
    /// in the one shape; the request's metadata reaches the result and the line.
    @Test(arguments: Provider.allCases, Wire.allCases)
    func requiredToolChoiceGivesToolCalls(_ provider: Provider, _ wire: Wire) async throws {
        for native in [false, true] {
            try await withEmulatorHarness(wire) { h in
                let requests = [
                    Self.toolRequest(provider, "t-req", choice: .required, metadata: ["row": "1", "source": "crm"]),
                    Self.toolRequest(provider, "t-named", choice: .tool("get_time"), metadata: ["row": "2"]),
                ]
                let log = await Self.run(provider, h, native: native, requests)
                #expect(log.items.count == 2)
                for request in requests {
                    let result = try #require(log.items[request.id])
                    let response = try #require(result.response, "\(provider) native=\(native): \(String(describing: result.error))")
                    #expect(result.route == (native ? .batch : .realtime))
                    #expect(response.finishReason == .toolCalls)
                    let call = try #require(response.toolCalls.first)
                    #expect(response.toolCalls.count == 1)
                    #expect(!call.id.isEmpty)
                    #expect(call.arguments.objectValue != nil)
                    if request.id == "t-named" { #expect(call.name == "get_time") } else { #expect(call.name == "get_weather") }
                    if call.name == "get_weather" { #expect(call.arguments["city"]?.stringValue != nil) }
                    #expect(result.metadata == request.metadata)

                    // The output line: one shape for every provider, and it reads back the same.
                    let line = result.outputLine()
                    let member = try #require(line["batchkit"]?["tool_calls"]?[0])
                    #expect(member["name"]?.stringValue == call.name)
                    #expect(member["id"]?.stringValue == call.id)
                    #expect(member["arguments"] == call.arguments)
                    #expect(line["batchkit"]?["metadata"] == .object(request.metadata.mapValues(JSONValue.string)))
                    let back = try BatchResult(outputLine: line)
                    #expect(back.response?.toolCalls == response.toolCalls)
                    #expect(back.metadata == request.metadata)
                }
            }
        }
    }

    /// `auto` (the emulator then answers in text) gives no tool calls and a stop.
    @Test(arguments: Provider.allCases)
    func autoChoiceMayAnswerInText(_ provider: Provider) async throws {
        try await withEmulatorHarness(.inProcess) { h in
            let log = await Self.run(provider, h, native: false, [Self.toolRequest(provider, "t-auto", choice: .auto)])
            let response = try #require(log.items["t-auto"]?.response)
            #expect(response.toolCalls.isEmpty)
            #expect(response.finishReason == .stop)
        }
    }

    /// A whole tool round trip: the call from the first answer and its result sent back are
    /// accepted by the provider (each translates history its own way).
    @Test(arguments: Provider.allCases, Wire.allCases)
    func toolResultRoundTrip(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire) { h in
            let first = await Self.run(provider, h, native: false, [Self.toolRequest(provider, "rt-1", choice: .required)])
            let call = try #require(first.items["rt-1"]?.response?.toolCalls.first)
            let followUp = BatchRequest(
                id: "rt-2",
                chat: ChatRequest(
                    model: provider.model,
                    messages: [
                        .user("Weather in Paris?"), .assistant(toolCalls: [call]),
                        .toolResult(callID: call.id, #"{"temperature": 21, "sky": "clear"}"#),
                    ],
                    maxTokens: 100, tools: [Self.weather, Self.clock], toolChoice: .auto))
            for native in [false, true] {
                let log = await Self.run(provider, h, native: native, [followUp])
                let result = try #require(log.items["rt-2"])
                #expect(result.isSuccess, "\(provider) native=\(native): \(String(describing: result.error))")
            }
        }
    }

    /// Cache fields: the second request with the same long prefix reads it from the cache, the
    /// usage says so (Anthropic also reports the write), and the cost prices reads below input.
    @Test(arguments: Provider.allCases, Wire.allCases)
    func cacheFieldsGiveCacheUsageAndCost(_ provider: Provider, _ wire: Wire) async throws {
        let prefix = String(repeating: "The contract text, clause by clause. ", count: 160)  // ~1,500 tokens
        func request(_ id: String) -> BatchRequest {
            var chat = ChatRequest(model: provider.model, messages: [.user("Summarise clause \(id).")], maxTokens: 50)
            switch provider {
            case .openAI:
                chat.messages.insert(.system(prefix), at: 0)
                chat.promptCacheKey = "contract-v1"
            case .anthropic:
                chat.system = prefix
                chat.systemCacheControl = .oneHour
            case .gemini:
                chat.cachedContent = "cachedContents/contract-v1"
            }
            return BatchRequest(id: id, chat: chat)
        }
        let prices = PriceTable.defaults
        for native in [false, true] {
            try await withEmulatorHarness(wire) { h in
                let log = await Self.run(provider, h, native: native, [request("c-1"), request("c-2"), request("c-3")])
                let results = ["c-1", "c-2", "c-3"].compactMap { log.items[$0] }
                #expect(results.count == 3 && results.allSatisfy(\.isSuccess))
                let reads = results.filter { $0.usage.cachedInputTokens > 0 }
                #expect(reads.count >= 2, "\(provider) native=\(native): \(results.map(\.usage))")
                if provider == .anthropic {
                    let writes = results.filter { $0.usage.cacheWriteTokens > 0 }
                    #expect(writes.count == 1)
                    #expect(writes.allSatisfy { $0.usage.cacheWrite1hTokens == $0.usage.cacheWriteTokens })
                }
                for r in results {
                    #expect(r.usage.cachedInputTokens + r.usage.cacheWriteTokens <= r.usage.inputTokens)
                    #expect(r.outputLine()["batchkit"]?["usage"]?["cached"]?.intValue == (r.usage.cachedInputTokens == 0 ? nil : r.usage.cachedInputTokens))
                    // The cost at the table's rates, against the same usage billed without any cache.
                    let cost = try #require(prices.cost(of: r))
                    var plain = r.usage
                    plain.cachedInputTokens = 0
                    plain.cacheWriteTokens = 0
                    plain.cacheWrite1hTokens = 0
                    let uncached = try #require(prices.cost(of: plain, model: provider.model))
                    if r.usage.cachedInputTokens > 0 { #expect(cost < uncached) }
                    if r.usage.cacheWriteTokens > 0 { #expect(cost > uncached) }
                }
            }
        }
    }
}
