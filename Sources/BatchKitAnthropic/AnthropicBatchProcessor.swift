import BatchKit
import Foundation

/// Anthropic Message Batches behind the ``Processor`` protocol: a ``NativeBatchProcessor`` over an
/// ``AnthropicBatchBackend``, under the name users type.
///
/// ```swift
/// let processor: any Processor = cheap
///     ? AnthropicBatchProcessor()                                        // key from ANTHROPIC_API_KEY
///     : ConcurrentProcessor(client: AnthropicClient(), configuration: .init(maxConcurrency: 32))
/// for await event in processor.processAsync(requests) { ... }
/// ```
///
/// Everything is ``NativeBatchProcessor``'s: custom ids are checked against Anthropic's
/// `^[a-zA-Z0-9_-]{1,64}$` and for uniqueness before anything is sent, work is split over
/// 100,000 requests / 256 MB per batch, results are streamed from `results_url`, and the job
/// management calls (``submit(_:)``, ``status(_:)``, ``results(_:)``, ``cancel(_:)``, ``list(limit:)``,
/// ``attach(_:expecting:)``) are forwarded.
public struct AnthropicBatchProcessor<C: Clock>: Processor where C.Duration == Duration {
    /// The shared orchestration.
    public let native: NativeBatchProcessor<C>
    /// The Anthropic half.
    public let backend: AnthropicBatchBackend

    /// A processor over `backend`, on `clock` (tests pass a `ManualClock`).
    public init(backend: AnthropicBatchBackend, configuration: NativeBatchProcessor<C>.Configuration = .init(), clock: C) {
        self.backend = backend
        self.native = NativeBatchProcessor(backend: backend, configuration: configuration, clock: clock)
    }

    /// Processes `requests` through Message Batches; see ``NativeBatchProcessor``.
    public func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        native.processAsync(requests)
    }

    /// Resumes after a restart: collects batches created earlier without resubmitting anything.
    public func attach(_ jobIDs: [String], expecting: [String: [String]] = [:]) -> BatchEventStream {
        native.attach(jobIDs, expecting: expecting)
    }

    /// Validates, splits and submits without waiting.
    public func submit(_ requests: [BatchRequest]) async throws -> (jobs: [BatchJob], rejected: [BatchResult]) {
        try await native.submit(requests)
    }

    /// A batch's current state.
    public func status(_ jobID: String) async throws -> BatchJob { try await native.status(jobID) }

    /// The results of an ended batch.
    public func results(_ jobID: String) async throws -> [BatchResult] { try await native.results(jobID) }

    /// Asks Anthropic to cancel a batch.
    @discardableResult
    public func cancel(_ jobID: String) async throws -> BatchJob { try await native.cancel(jobID) }

    /// Batches of the workspace, newest first.
    public func list(limit: Int = 20) async throws -> [BatchJob] { try await native.list(limit: limit) }

    /// Deletes an ended batch.
    public func delete(_ jobID: String) async throws { try await backend.delete(jobID: jobID) }
}

extension AnthropicBatchProcessor where C == ContinuousClock {
    /// A processor over `backend` on the continuous clock.
    public init(backend: AnthropicBatchBackend, configuration: NativeBatchProcessor<C>.Configuration = .init()) {
        self.init(backend: backend, configuration: configuration, clock: ContinuousClock())
    }

    /// A processor talking to Anthropic (or the emulator at `baseURL`).
    ///
    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `ANTHROPIC_API_KEY`.
    ///   - baseURL: `https://api.anthropic.com` or the emulator's URL.
    ///   - defaultMaxTokens: `max_tokens` when a request sets none.
    ///   - configuration: polling, splitting, resubmission (see ``NativeBatchProcessor/Configuration``).
    ///   - transport: the HTTP transport.
    public init(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://api.anthropic.com")!,
        defaultMaxTokens: Int = AnthropicWire.defaultMaxTokens, configuration: NativeBatchProcessor<C>.Configuration = .init(),
        transport: any HTTPTransport = URLSessionTransport()
    ) {
        self.init(
            backend: AnthropicBatchBackend(apiKey: apiKey, baseURL: baseURL, defaultMaxTokens: defaultMaxTokens, transport: transport),
            configuration: configuration)
    }
}
