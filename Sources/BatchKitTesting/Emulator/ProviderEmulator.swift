import BatchKit
import Foundation
import Synchronization

/// One model of OpenAI, Anthropic and Gemini — real-time and batch endpoints — wire-accurate to
/// `providers.md`, served in-process (``transport``) or on a loopback port (``EmulatorServer``).
///
/// All three providers are served at once: their paths do not collide (Gemini's `/v1/batches`
/// and `/v1/files` are told apart from OpenAI's by Gemini's credentials and `:verb` suffixes).
///
/// ```swift
/// let emulator = ProviderEmulator(configuration: .init(latency: .milliseconds(5), requestsPerMinute: 600))
/// let client = OpenAIClient(apiKey: "sk-test", baseURL: URL(string: "http://emulator.invalid/v1")!,
///                           transport: emulator.transport)
/// ```
public final class ProviderEmulator: Sendable {
    let config: Mutex<EmulatorConfiguration>
    let nowOffset: @Sendable () -> Duration
    let sleepFor: @Sendable (Duration) async throws -> Void
    /// Wall-clock time of the emulator's start; timestamps are `startDate + nowOffset()`.
    let startDate: Date

    struct Shared {
        var rng: SplitMix64
        var idCounter = 0
        /// Custom ids of real-time calls, one entry per call (on disk when large; counted on demand).
        var sentRealtime = EmulatorIDLog()
        /// Custom ids sent in batches, one list per batch (on disk when large; counted on demand).
        var sentInBatches: [EmulatorIDList] = []
        var modelRequests = 0
        var rateLimited = 0
        var faultMatches: [Int: Int] = [:]
        var buckets: [String: RateWindow] = [:]
        /// Draws of the fault schedule, apart from `rng` so ids do not depend on the faults.
        var faultRNG: SplitMix64
        /// Draws of the latency jitter, apart from `rng` for the same reason.
        var jitterRNG: SplitMix64
        var scheduledFaults: [EmulatorFaultSchedule.Kind: Int] = [:]
        var ledger = BillingLedger()
    }

    let shared: Mutex<Shared>
    let openAIState = Mutex(OpenAIEmulatorState())
    let anthropicState = Mutex(AnthropicEmulatorState())
    let geminiState = Mutex(GeminiEmulatorState())
    /// Prompt prefixes cached by real-time requests (ProviderEmulator+Tools.swift).
    let promptCache = Mutex(EmulatorPromptCache())

    /// An emulator whose batch progress, rate windows and latency follow `clock`.
    public init<C: Clock>(configuration: EmulatorConfiguration = .init(), clock: C) where C.Duration == Duration {
        self.config = Mutex(configuration)
        let start = clock.now
        self.nowOffset = { start.duration(to: clock.now) }
        self.sleepFor = { d in try await clock.sleep(until: clock.now.advanced(by: d), tolerance: nil) }
        self.startDate = Date()
        self.shared = Mutex(
            Shared(
                rng: SplitMix64(seed: configuration.seed), faultRNG: SplitMix64(seed: configuration.seed ^ 0xFA17_5EED_0BAD_CAFE),
                jitterRNG: SplitMix64(seed: configuration.seed ^ 0x0715_7E12_5EED_0001)))
    }

    /// An emulator on the continuous clock.
    public convenience init(configuration: EmulatorConfiguration = .init()) {
        self.init(configuration: configuration, clock: ContinuousClock())
    }

    /// The current configuration.
    public var configuration: EmulatorConfiguration { config.withLock { $0 } }

    /// Changes the configuration of a running emulator (add faults, change limits...).
    public func update(_ change: (inout EmulatorConfiguration) -> Void) { config.withLock { change(&$0) } }

    /// An `HTTPTransport` that answers in-process, with no sockets.
    public var transport: EmulatorTransport { EmulatorTransport(emulator: self) }

    // MARK: - Counters

    /// How many times a request with this custom id was received: in a batch submission, or in a
    /// real-time call carrying `x-client-request-id`. Tests use it to prove nothing was sent twice.
    public func sentCount(customID: String) -> Int {
        shared.withLock { s in
            s.sentInBatches.reduce(s.sentRealtime.count(of: customID)) { n, ids in n + ids.reduce(0) { $0 + ($1 == customID ? 1 : 0) } }
        }
    }

    /// Every custom id received, with its count.
    public var sentCounts: [String: Int] {
        shared.withLock { s in
            var counts = s.sentRealtime.counts()
            for ids in s.sentInBatches { for id in ids { counts[id, default: 0] += 1 } }
            return counts
        }
    }

    /// Model calls answered (real-time chat, messages, generateContent, embeddings), including 429s.
    public var modelRequestCount: Int { shared.withLock { $0.modelRequests } }

    /// Model calls answered with 429.
    public var rateLimitedCount: Int { shared.withLock { $0.rateLimited } }

    func recordSent(customID: String) {
        shared.withLock { $0.sentRealtime.append(customID) }
    }

    /// Records the ids of a batch as sent (kept on disk when large: a million cost no memory).
    func recordSent(_ ids: EmulatorIDList) {
        shared.withLock { $0.sentInBatches.append(ids) }
    }

    // MARK: - Time and ids

    /// Time since the emulator started, on its clock.
    public var elapsed: Duration { nowOffset() }

    /// Current wall-clock time as the emulator reports it.
    var now: Date { startDate.addingTimeInterval(nowOffset().seconds) }

    /// A fresh pseudo-random hex id with a prefix (`batch_`, `file-`, `msgbatch_`...).
    func newID(_ prefix: String, hexDigits: Int = 24) -> String {
        shared.withLock { s in
            s.idCounter += 1
            var out = prefix
            var remaining = hexDigits
            while remaining > 0 {
                let word = String(s.rng.next(), radix: 16)
                let padded = String(repeating: "0", count: max(0, 16 - word.count)) + word
                out += padded.prefix(remaining)
                remaining -= min(16, remaining)
            }
            return out
        }
    }

    /// A uniform random number in 0..<1 from the seeded generator.
    func random() -> Double { shared.withLock { Double($0.rng.next() >> 11) / Double(1 << 53) } }

    /// How many of `total` batch items have finished `age` after creation under the configured
    /// batch duration.
    func finishedCount(total: Int, age: Duration) -> Int {
        let duration = config.withLock { $0.batchDuration }
        if duration <= .zero { return total }
        let fraction = min(1, max(0, age.seconds / duration.seconds))
        return min(total, Int((Double(total) * fraction).rounded(.down)))
    }

    /// Whether a batch created `age` ago has expired under the configured expiry.
    func isExpired(age: Duration, finished: Int, total: Int) -> Bool {
        guard let expiry = config.withLock({ $0.batchExpiry }) else { return false }
        return finished < total && age >= expiry
    }

    // MARK: - Routing

    /// Answers one request. The loopback server and the in-process transport both call this.
    public func handle(_ request: EmulatorRequest) async -> EmulatorResponse {
        if request.path.hasPrefix(Self.debugPathPrefix) { return debugRoute(request) }
        let provider = Self.provider(of: request)
        if let scheduled = drawScheduledFault(request) {
            return await answer(request, provider: provider, with: scheduled)
        }
        if let kind = matchFault(request, provider: provider) {
            switch kind {
            case .status(let code):
                return errorResponse(provider, status: code, message: "The server had an error while processing your request.")
            case .overloaded:
                return overloadedResponse(provider)
            case .resetConnection:
                return EmulatorResponse(status: 500, fault: .resetConnection)
            case .truncatedBody(let bytes):
                var r = await route(request, provider: provider)
                r.fault = .truncateBody(bytes: bytes)
                return r
            case .slowBody(let d):
                var r = await route(request, provider: provider)
                r.fault = .slowBody(duration: d)
                return r
            case .malformedResultLines, .errorFileOnly:
                break  // applied by the batch code when it writes results
            }
        }
        return await route(request, provider: provider)
    }

    func route(_ request: EmulatorRequest, provider: EmulatedProvider) async -> EmulatorResponse {
        let answer: EmulatorResponse?
        switch provider {
        case .openAI: answer = await handleOpenAI(request)
        case .anthropic: answer = await handleAnthropic(request)
        case .gemini: answer = await handleGemini(request)
        }
        guard let answer else {
            return errorResponse(provider, status: 404, message: "Unknown request URL: \(request.method) \(request.path)")
        }
        billRealtime(request, provider: provider, status: answer.status)
        return answer
    }

    /// Which provider a request is for, by path and credentials.
    static func provider(of r: EmulatorRequest) -> EmulatedProvider {
        let p = r.path
        if p.hasPrefix("/v1/messages") { return .anthropic }
        if p.hasPrefix("/openai/") { return .openAI }
        if p.hasPrefix("/v1beta/") || p.hasPrefix("/upload/") || p.hasPrefix("/download/") { return .gemini }
        if r.method == "GET", p.hasPrefix("/v1/models/") || p == "/v1/models" {
            // Retrieve a model: the same path for OpenAI and Anthropic (and Gemini's v1), told
            // apart by the credentials (an OpenAI fine-tuned id may hold colons).
            if r.headers["x-goog-api-key"] != nil || r.query["key"] != nil { return .gemini }
            if r.headers["x-api-key"] != nil || r.headers["anthropic-version"] != nil { return .anthropic }
            return .openAI
        }
        if p.hasPrefix("/v1/models/") && p.contains(":") { return .gemini }
        if r.headers["x-goog-api-key"] != nil || r.query["key"] != nil { return .gemini }
        if (p.hasPrefix("/v1/batches/") || p.hasPrefix("/v1/files/")) && p.contains(":") { return .gemini }
        return .openAI
    }

    /// Whether a fault applies to this request; counts the match.
    func matchFault(_ r: EmulatorRequest, provider: EmulatedProvider, kinds: ((EmulatorFault.Kind) -> Bool)? = nil)
        -> EmulatorFault.Kind?
    {
        let faults = config.withLock { $0.faults }
        for (index, fault) in faults.enumerated() {
            if let kinds, !kinds(fault.kind) { continue }
            if kinds == nil {
                switch fault.kind {
                case .malformedResultLines, .errorFileOnly: continue
                default: break
                }
            }
            let targeted: Bool
            switch fault.target {
            case .any: targeted = true
            case .provider(let p): targeted = p == provider
            case .endpoint(let s): targeted = r.path.contains(s)
            case .batchPoll(let p):
                targeted = r.method == "GET" && (p == nil || p == provider) && Self.isBatchPoll(r, provider: provider)
            }
            guard targeted else { continue }
            let n = shared.withLock { s -> Int in
                s.faultMatches[index, default: 0] += 1
                return s.faultMatches[index]!
            }
            let fires: Bool
            switch fault.frequency {
            case .always: fires = true
            case .firstTimes(let k): fires = n <= k
            case .every(let k): fires = k > 0 && n % k == 0
            case .probability(let p): fires = random() < p
            }
            if fires { return fault.kind }
        }
        return nil
    }

    /// Whether a batch-level fault (malformed lines, error-file-only) is configured for a provider.
    func batchFault(_ provider: EmulatedProvider) -> EmulatorFault.Kind? {
        let faults = config.withLock { $0.faults }
        for f in faults {
            switch f.kind {
            case .malformedResultLines, .errorFileOnly:
                switch f.target {
                case .any: return f.kind
                case .provider(let p) where p == provider: return f.kind
                default: continue
                }
            default: continue
            }
        }
        return nil
    }

    static func isBatchPoll(_ r: EmulatorRequest, provider: EmulatedProvider) -> Bool {
        switch provider {
        case .openAI: return r.path.range(of: #"^(/openai)?/v1/batches/[^/]+$"#, options: .regularExpression) != nil
        case .anthropic: return r.path.range(of: #"^/v1/messages/batches/[^/]+$"#, options: .regularExpression) != nil
        case .gemini: return r.path.range(of: #"^/v1(beta)?/batches/[^/:]+$"#, options: .regularExpression) != nil
        }
    }

    // MARK: - Model-call bookkeeping shared by the providers

    /// Waits the configured latency and counts a model call.
    func modelCall() async {
        shared.withLock { $0.modelRequests += 1 }
        let latency = config.withLock { $0.latency }
        if latency > .zero { try? await sleepFor(latency) }
    }
}

/// A deterministic 64-bit generator (SplitMix64): the same seed gives the same numbers, so a
/// seeded test or fault schedule replays exactly. Not for anything that needs unpredictability.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's whole state; advancing it is all `next()` does.
    public var state: UInt64
    /// A generator that starts from `seed`.
    public init(seed: UInt64) { state = seed }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A number in [0, 1) with 53 random bits.
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
