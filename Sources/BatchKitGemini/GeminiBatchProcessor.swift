public import BatchKit
public import Foundation

extension NativeBatchProcessor where C == ContinuousClock {
    /// Native Gemini batches (half price): ``NativeBatchProcessor`` over ``GeminiBatchBackend``.
    ///
    /// ```swift
    /// let processor = NativeBatchProcessor.gemini(configuration: .init(pollInterval: .seconds(30)))  // key from GEMINI_API_KEY
    /// for await event in processor.processAsync(requests) {
    ///     if case .submitted(let job) = event { save(job.id) }        // batches/…, for attach after a restart
    ///     if case .item(let result) = event { ... }
    /// }
    /// ```
    ///
    /// Requests are grouped per model and kind (one Gemini batch holds one model); small jobs are
    /// sent inline, larger ones (20 MB and up) as an uploaded JSONL file. Parameters come in the
    /// order of every provider's factory (see `NativeBatchProcessor.openAI(...)`); for another
    /// clock, build the backend and use ``NativeBatchProcessor/init(backend:configuration:clock:)``.
    ///
    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `GEMINI_API_KEY`, then `GOOGLE_API_KEY`.
    ///   - baseURL: `https://generativelanguage.googleapis.com` by default.
    ///   - apiVersion: `v1beta` (default) or `v1`.
    ///   - extraHeaders: added to every request.
    ///   - transport: how requests are sent (URLSession by default).
    ///   - timeout: time allowed per HTTP call (uploads and downloads included).
    ///   - limits: per-job limits the processor splits by.
    ///   - inlineByteLimit: see ``GeminiBatchBackend/inlineByteLimit``.
    ///   - configuration: polling, resubmission, max wait...
    public static func gemini(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://generativelanguage.googleapis.com")!,
        apiVersion: String = "v1beta", extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(),
        timeout: Duration? = .seconds(600), limits: BatchLimits = GeminiBatchBackend.defaultLimits,
        inlineByteLimit: Int = GeminiBatchBackend.defaultInlineByteLimit, configuration: Configuration = .init()
    ) -> NativeBatchProcessor<ContinuousClock> {
        NativeBatchProcessor(
            backend: GeminiBatchBackend(
                apiKey: apiKey, baseURL: baseURL, apiVersion: apiVersion, extraHeaders: extraHeaders, transport: transport,
                timeout: timeout, limits: limits, inlineByteLimit: inlineByteLimit),
            configuration: configuration)
    }
}


extension NativeBatchProcessor {
    /// A native-batch processor over a ``GeminiBatchBackend`` you configured (your own limits or inline byte limit), on `clock`
    /// (tests pass a `ManualClock`).
    public init(backend: GeminiBatchBackend, configuration: Configuration = Configuration(), clock: C) {
        self.init(backend: backend as any BatchBackend, configuration: configuration, clock: clock)
    }

    /// A native-batch processor over a ``GeminiBatchBackend`` you configured, on the continuous clock.
    public init(backend: GeminiBatchBackend, configuration: Configuration = Configuration()) where C == ContinuousClock {
        self.init(backend: backend as any BatchBackend, configuration: configuration, clock: ContinuousClock())
    }
}
