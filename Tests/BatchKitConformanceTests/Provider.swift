import BatchKit
import BatchKitAnthropic
import BatchKitGemini
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// The providers every conformance test runs over, with what differs between them: how to
/// build their clients and batch backends against an emulator harness, their default model, and
/// how their jobs look. Everything else a test checks is the same for all three.
enum Provider: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case openAI
    case anthropic
    case gemini

    var testDescription: String { rawValue }

    static let openAIKey = "sk-conformance-openai-0001"
    static let anthropicKey = "sk-ant-conformance-0001"
    static let geminiKey = "AIzaConformance-gemini-0001"

    /// The emulator's name for the provider (fault targets).
    var emulated: EmulatedProvider {
        switch self {
        case .openAI: .openAI
        case .anthropic: .anthropic
        case .gemini: .gemini
        }
    }

    var model: String {
        switch self {
        case .openAI: "gpt-4o-mini"
        case .anthropic: "claude-sonnet-4-5"
        case .gemini: "gemini-2.5-flash"
        }
    }

    /// A second model of the same provider (for splitting by model).
    var otherModel: String {
        switch self {
        case .openAI: "gpt-4o"
        case .anthropic: "claude-haiku-4-5"
        case .gemini: "gemini-2.5-pro"
        }
    }

    /// How the provider's job ids start.
    var jobIDPrefix: String {
        switch self {
        case .openAI: "batch_"
        case .anthropic: "msgbatch_"
        case .gemini: "batches/"
        }
    }

    /// The provider's own name for a job that is running (`BatchJob.remoteStatus`).
    var runningStatus: String { self == .gemini ? "BATCH_STATE_RUNNING" : "in_progress" }

    /// The model as the provider names it in a job's metadata.
    func jobModelName(_ model: String) -> String { self == .gemini ? "models/\(model)" : model }

    /// Whether the provider's answers carry rate-limit headers a client can learn limits from.
    var sendsRateLimitHeaders: Bool { self != .gemini }

    /// Whether a batch job holds requests of one model only (so a run splits by model).
    var splitsByModel: Bool { self != .anthropic }

    /// The real-time client, against the harness's emulator.
    func client(_ h: EmulatorHarness) -> any ModelClient {
        switch self {
        case .openAI: return OpenAIClient(apiKey: Self.openAIKey, baseURL: h.root.appendingPathComponent("v1"), transport: h.transport)
        case .anthropic: return AnthropicClient(apiKey: Self.anthropicKey, baseURL: h.root, transport: h.transport)
        case .gemini: return GeminiClient(apiKey: Self.geminiKey, baseURL: h.root, transport: h.transport)
        }
    }

    /// The batch backend, against the harness's emulator (over `transport` when given).
    func backend(_ h: EmulatorHarness, limits: BatchLimits? = nil, transport: (any HTTPTransport)? = nil) -> any BatchBackend {
        let transport = transport ?? h.transport
        switch self {
        case .openAI:
            return OpenAIBatchBackend(
                apiKey: Self.openAIKey, baseURL: h.root.appendingPathComponent("v1"), transport: transport,
                limits: limits ?? OpenAIBatchBackend.defaultLimits)
        case .anthropic:
            return AnthropicBatchBackend(
                apiKey: Self.anthropicKey, baseURL: h.root, transport: transport, limits: limits ?? AnthropicBatchBackend.defaultLimits)
        case .gemini:
            if let limits { return GeminiBatchBackend(apiKey: Self.geminiKey, baseURL: h.root, transport: transport, limits: limits) }
            return GeminiBatchBackend(apiKey: Self.geminiKey, baseURL: h.root, transport: transport)
        }
    }

    /// A native batch processor on the harness's clock.
    func processor(
        _ h: EmulatorHarness, _ configuration: NativeBatchProcessor<ManualClock>.Configuration = Provider.polling,
        limits: BatchLimits? = nil, transport: (any HTTPTransport)? = nil
    ) -> NativeBatchProcessor<ManualClock> {
        NativeBatchProcessor(backend: backend(h, limits: limits, transport: transport), configuration: configuration, clock: h.clock)
    }

    /// Polls every 5 s.
    static let polling = NativeBatchProcessor<ManualClock>.Configuration(pollInterval: .seconds(5), maxPollInterval: .seconds(5), pollBackoff: 1)

    /// A chat request for this provider's default model (or `model`).
    func chat(_ id: String, _ text: String? = nil, model: String? = nil) -> BatchRequest {
        BatchRequest(id: id, chat: ChatRequest(model: model ?? self.model, messages: [.user(text ?? "Question \(id): what is 2 + 2?")]))
    }

    func chats(_ n: Int, prefix: String = "q") -> [BatchRequest] { (0..<n).map { chat("\(prefix)-\($0)") } }
}

/// Everything one run reported.
struct RunLog {
    var events: [BatchEvent] = []
    var started = 0
    var submitted: [BatchJob] = []
    var items: [String: BatchResult] = [:]
    var duplicateItems = 0
    var retries: [(id: String, attempt: Int, delay: Duration, error: BatchError)] = []
    var progress: [BatchProgress] = []
    var summary: BatchSummary?
    var failure: BatchError?
    var eventsAfterTerminal = 0

    init(_ events: [BatchEvent]) {
        self.events = events
        for event in events {
            if summary != nil || failure != nil { eventsAfterTerminal += 1 }
            switch event {
            case .started: started += 1
            case .submitted(let job): submitted.append(job)
            case .item(let r):
                if items[r.id] != nil { duplicateItems += 1 }
                items[r.id] = r
            case .retrying(let id, let attempt, let delay, let error): retries.append((id: id, attempt: attempt, delay: delay, error: error))
            case .progress(let p): progress.append(p)
            case .completed(let s): summary = s
            case .failed(let e): failure = e
            }
        }
    }
}

extension ClockDriver {
    /// Runs `stream` to its end with the clock driven, and logs what it reported.
    func log(_ stream: BatchEventStream) async -> RunLog { RunLog(await consume(stream)) }
}
