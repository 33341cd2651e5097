import BatchKit
public import Foundation

/// How the ``ProviderEmulator`` behaves.
public struct EmulatorConfiguration: Sendable {
    /// Added to every model call (chat, messages, generateContent, embeddings).
    public var latency: Duration
    /// How long a batch takes from creation to completion; items finish evenly over that time.
    /// `.zero` means a batch is complete when it is first read.
    public var batchDuration: Duration
    /// When set, batches still unfinished this long after creation expire (their unfinished items
    /// reported as the provider reports expiry).
    public var batchExpiry: Duration?
    /// When set, every request must carry this key (as each provider sends it); otherwise any
    /// non-empty key is accepted. A missing key is always a 401.
    public var requiredAPIKey: String?
    /// Requests per minute allowed per key on model endpoints (`nil`: unlimited).
    public var requestsPerMinute: Int?
    /// Tokens per minute allowed per key on model endpoints (`nil`: unlimited).
    public var tokensPerMinute: Int?
    /// How much of the limits the per-key buckets hold, in time: a minute (the default) lets a
    /// whole minute's quota go at once, as OpenAI's documented limits do; one second is a strict
    /// bucket that refuses anything beyond one second's worth plus the refill.
    public var rateLimitWindow: Duration
    /// A random delay between zero and this, drawn per model call (seeded), spent *before* the
    /// rate limits see the call, as network delay would be: requests paced exactly by the client
    /// reach the limiter bunched up or spread out.
    public var latencyJitter: Duration
    /// Faults to inject.
    public var faults: [EmulatorFault]
    /// A seeded schedule of random faults on every route (`nil`: none). Applied before
    /// ``faults``; see ``EmulatorFaultSchedule``.
    public var faultSchedule: EmulatorFaultSchedule?
    /// The base URL the emulator is reachable at, used in URLs it hands out (Anthropic's
    /// `results_url`, Gemini's upload URL). The loopback server sets it when it starts.
    public var publicBaseURL: URL
    /// Seed for every random choice (fault probabilities, ids), so runs are reproducible.
    public var seed: UInt64

    public init(
        latency: Duration = .zero, batchDuration: Duration = .zero, batchExpiry: Duration? = nil,
        requiredAPIKey: String? = nil, requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil,
        rateLimitWindow: Duration = .seconds(60), latencyJitter: Duration = .zero, faults: [EmulatorFault] = [], faultSchedule: EmulatorFaultSchedule? = nil,
        publicBaseURL: URL = URL(string: "http://emulator.invalid")!, seed: UInt64 = 42
    ) {
        self.latency = latency
        self.batchDuration = batchDuration
        self.batchExpiry = batchExpiry
        self.requiredAPIKey = requiredAPIKey
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.rateLimitWindow = rateLimitWindow
        self.latencyJitter = latencyJitter
        self.faults = faults
        self.faultSchedule = faultSchedule
        self.publicBaseURL = publicBaseURL
        self.seed = seed
    }
}

/// Which provider an endpoint belongs to.
public enum EmulatedProvider: String, Sendable, Hashable, CaseIterable {
    case openAI = "openai"
    case anthropic
    case gemini
}

/// A fault injected into the emulator's answers.
///
/// ```swift
/// // Every third chat completion fails with 500; the first two Anthropic messages get 529.
/// EmulatorFault(.status(500), on: .endpoint("/v1/chat/completions"), every: 3)
/// EmulatorFault(.overloaded, on: .provider(.anthropic), firstTimes: 2)
/// ```
public struct EmulatorFault: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// An HTTP error answer with the provider's own body for that status (500, 503...).
        case status(Int)
        /// Anthropic's 529 `overloaded_error` (503 `UNAVAILABLE` for Gemini, 503 for OpenAI).
        case overloaded
        /// The connection is closed without an answer.
        case resetConnection
        /// The body is cut after `bytes` bytes.
        case truncatedBody(bytes: Int)
        /// The body arrives slowly over `duration`.
        case slowBody(Duration)
        /// Batch result files contain this many malformed (non-JSON) lines in place of results.
        case malformedResultLines(Int)
        /// A batch completes with every item failed: only an error file, no output file.
        case errorFileOnly
    }

    /// Which requests a fault applies to.
    public enum Target: Sendable, Hashable {
        case any
        case provider(EmulatedProvider)
        /// Requests whose path contains this string (`/v1/chat/completions`, `:generateContent`,
        /// `/v1/batches/`...).
        case endpoint(String)
        /// Only `GET` polls of batch status.
        case batchPoll(EmulatedProvider?)
    }

    /// How often it applies.
    public enum Frequency: Sendable, Hashable {
        case always
        /// The first `n` matching requests.
        case firstTimes(Int)
        /// Every `n`-th matching request.
        case every(Int)
        /// Each matching request with this probability (seeded, reproducible).
        case probability(Double)
    }

    public var kind: Kind
    public var target: Target
    public var frequency: Frequency

    public init(_ kind: Kind, on target: Target = .any, _ frequency: Frequency = .always) {
        self.kind = kind
        self.target = target
        self.frequency = frequency
    }

    public init(_ kind: Kind, on target: Target = .any, every n: Int) { self.init(kind, on: target, .every(n)) }
    public init(_ kind: Kind, on target: Target = .any, firstTimes n: Int) { self.init(kind, on: target, .firstTimes(n)) }
}
