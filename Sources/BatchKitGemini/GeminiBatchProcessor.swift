import BatchKit
import Foundation

// `GeminiBatchProcessor` is the name users type for native Gemini batches: a factory for
// ``NativeBatchProcessor`` over ``GeminiBatchBackend`` (a function, like `OpenAIBatchProcessor`
// and `AnthropicBatchProcessor`).

/// Native Gemini batches (half price): ``NativeBatchProcessor`` over ``GeminiBatchBackend``.
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
///
/// - Parameters:
///   - apiKey: the key; `nil` reads `GEMINI_API_KEY`, then `GOOGLE_API_KEY`.
///   - baseURL: `https://generativelanguage.googleapis.com` by default.
///   - apiVersion: `v1beta` (default) or `v1`.
///   - transport: how requests are sent (URLSession by default).
///   - configuration: polling, limits, resubmission...
public func GeminiBatchProcessor(
    apiKey: String? = nil, baseURL: URL = URL(string: "https://generativelanguage.googleapis.com")!,
    apiVersion: String = "v1beta", transport: any HTTPTransport = URLSessionTransport(),
    configuration: NativeBatchProcessor<ContinuousClock>.Configuration = .init()
) -> NativeBatchProcessor<ContinuousClock> {
    NativeBatchProcessor(
        backend: GeminiBatchBackend(apiKey: apiKey, baseURL: baseURL, apiVersion: apiVersion, transport: transport),
        configuration: configuration)
}

/// A native-batch processor over a Gemini backend you configured, on any clock (tests pass a
/// `ManualClock`).
public func GeminiBatchProcessor<C: Clock>(
    backend: GeminiBatchBackend, configuration: NativeBatchProcessor<C>.Configuration = .init(), clock: C
) -> NativeBatchProcessor<C> where C.Duration == Duration {
    NativeBatchProcessor(backend: backend, configuration: configuration, clock: clock)
}

/// A native-batch processor over a Gemini backend you configured.
public func GeminiBatchProcessor(
    backend: GeminiBatchBackend, configuration: NativeBatchProcessor<ContinuousClock>.Configuration = .init()
) -> NativeBatchProcessor<ContinuousClock> {
    NativeBatchProcessor(backend: backend, configuration: configuration)
}
