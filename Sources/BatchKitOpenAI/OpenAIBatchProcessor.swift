import BatchKit
import Foundation

// `OpenAIBatchProcessor` is the name users type for native OpenAI batches: a factory for
// ``NativeBatchProcessor`` over ``OpenAIBatchBackend`` (a function, not a type, so each
// provider module can offer its own without clashing initialisers on the shared generic type).

/// A native-batch processor for OpenAI: ``NativeBatchProcessor`` over ``OpenAIBatchBackend``
/// (Files + Batches, half price, results within 24 h).
///
/// ```swift
/// let processor = OpenAIBatchProcessor(apiKey: key, configuration: .init(pollInterval: .seconds(30)))
/// for await event in processor.processAsync(requests) { ... }
/// ```
///
/// - Parameters:
///   - apiKey: `nil` reads `OPENAI_API_KEY`.
///   - baseURL: the API base including `/v1`.
///   - limits: job limits (OpenAI's: 50,000 requests and 200 MB per file).
///   - configuration: polling, resubmission, max wait... of the processor.
public func OpenAIBatchProcessor(
    apiKey: String? = nil, baseURL: URL = URL(string: "https://api.openai.com/v1")!, organization: String? = nil,
    project: String? = nil, extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(),
    limits: BatchLimits = OpenAIBatchBackend.defaultLimits,
    configuration: NativeBatchProcessor<ContinuousClock>.Configuration = .init()
) -> NativeBatchProcessor<ContinuousClock> {
    NativeBatchProcessor(
        backend: OpenAIBatchBackend(
            apiKey: apiKey, baseURL: baseURL, organization: organization, project: project, extraHeaders: extraHeaders,
            transport: transport, limits: limits),
        configuration: configuration)
}

/// A native-batch processor over an OpenAI backend you configured (Azure, shared client...), on
/// any clock (tests pass a `ManualClock`).
///
/// ```swift
/// let processor = OpenAIBatchProcessor(backend: .azure(endpoint: resource, apiKey: key), clock: ContinuousClock())
/// ```
public func OpenAIBatchProcessor<C: Clock>(
    backend: OpenAIBatchBackend, configuration: NativeBatchProcessor<C>.Configuration = .init(), clock: C
) -> NativeBatchProcessor<C> where C.Duration == Duration {
    NativeBatchProcessor(backend: backend, configuration: configuration, clock: clock)
}
