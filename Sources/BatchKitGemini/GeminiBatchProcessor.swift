import BatchKit
import Foundation

/// Native Gemini batches (half price) behind the ``Processor`` protocol: a
/// ``NativeBatchProcessor`` over a ``GeminiBatchBackend``.
///
/// ```swift
/// let processor = GeminiBatchProcessor(configuration: .init(pollInterval: .seconds(30)))  // key from GEMINI_API_KEY
/// for await event in processor.processAsync(requests) {
///     if case .submitted(let job) = event { save(job.id) }        // batches/…, for attach after a restart
///     if case .item(let result) = event { ... }
/// }
/// ```
///
/// Requests are grouped per model and kind (one Gemini batch holds one model); small jobs are
/// sent inline, larger ones (20 MB and up) as an uploaded JSONL file.
public struct GeminiBatchProcessor<C: Clock>: Processor where C.Duration == Duration {
    /// The shared orchestration this processor runs.
    public let native: NativeBatchProcessor<C>
    /// The Gemini half.
    public let backend: GeminiBatchBackend

    /// A processor over `backend`, on `clock` (tests pass a `ManualClock`).
    public init(backend: GeminiBatchBackend, configuration: NativeBatchProcessor<C>.Configuration = .init(), clock: C) {
        self.backend = backend
        self.native = NativeBatchProcessor(backend: backend, configuration: configuration, clock: clock)
    }

    public func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        native.processAsync(requests)
    }

    /// Resumes after a restart: polls the given `batches/…` jobs and reports their results,
    /// submitting nothing. See ``NativeBatchProcessor/attach(_:expecting:)``.
    public func attach(_ jobIDs: [String], expecting: [String: [String]] = [:]) -> BatchEventStream {
        native.attach(jobIDs, expecting: expecting)
    }

    /// Validates, splits and submits without waiting. See ``NativeBatchProcessor/submit(_:)``.
    public func submit(_ requests: [BatchRequest]) async throws -> (jobs: [BatchJob], rejected: [BatchResult]) {
        try await native.submit(requests)
    }

    /// The job's current state.
    public func status(_ jobID: String) async throws -> BatchJob { try await native.status(jobID) }

    /// The results of an ended job (or the partial results of a cancelled one).
    public func results(_ jobID: String) async throws -> [BatchResult] { try await native.results(jobID) }

    /// Asks Gemini to cancel a job.
    @discardableResult
    public func cancel(_ jobID: String) async throws -> BatchJob { try await native.cancel(jobID) }

    /// Batches known to Gemini for this key, newest first.
    public func list(limit: Int = 20) async throws -> [BatchJob] { try await native.list(limit: limit) }

    /// Deletes a job and its files.
    public func delete(_ jobID: String) async throws { try await backend.delete(jobID: jobID) }
}

extension GeminiBatchProcessor where C == ContinuousClock {
    /// A processor on the continuous clock over `backend`.
    public init(backend: GeminiBatchBackend, configuration: NativeBatchProcessor<C>.Configuration = .init()) {
        self.init(backend: backend, configuration: configuration, clock: ContinuousClock())
    }

    /// A processor talking to Gemini (or an emulator at `baseURL`).
    ///
    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `GEMINI_API_KEY`, then `GOOGLE_API_KEY`.
    ///   - baseURL: `https://generativelanguage.googleapis.com` by default.
    ///   - apiVersion: `v1beta` (default) or `v1`.
    ///   - transport: how requests are sent (URLSession by default).
    ///   - configuration: polling, limits, resubmission...
    public init(
        apiKey: String? = nil,
        baseURL: URL = URL(string: "https://generativelanguage.googleapis.com")!,
        apiVersion: String = "v1beta",
        transport: any HTTPTransport = URLSessionTransport(),
        configuration: NativeBatchProcessor<C>.Configuration = .init()
    ) {
        self.init(
            backend: GeminiBatchBackend(apiKey: apiKey, baseURL: baseURL, apiVersion: apiVersion, transport: transport),
            configuration: configuration)
    }
}
