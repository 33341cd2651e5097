import BatchKit
import Foundation

extension RunCommand {
    /// `--cache DIR`, `--no-cache`, `--cache-max-mb N` and `BATCHKIT_CACHE_DIR`, for the help text.
    static let cacheHelpText = """
          --cache DIR          answer requests asked before (same provider and base URL, endpoint and
                               body; custom_id and metadata do not count) from the response cache in
                               DIR at no cost (route "cache" in OUT.jsonl), and store every new
                               success there. Off unless --cache or BATCHKIT_CACHE_DIR is given
          --no-cache           do not use a cache, even when BATCHKIT_CACHE_DIR is set
          --cache-max-mb N     keep the cache under N MiB, least recently used first out
                               (default 1024)
        """

    /// The response cache the options ask for, or `nil` (the default: no cache).
    static func responseCache(
        _ arguments: Arguments, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> FileResponseCache? {
        let maxMB = try arguments.int("cache-max-mb", in: 1...(Int.max >> 20))
        if arguments.flag("no-cache") {
            if arguments.string("cache") != nil { throw UsageError("--cache and --no-cache exclude each other") }
            if maxMB != nil { throw UsageError("--cache-max-mb needs a cache (--cache DIR)") }
            return nil
        }
        guard let path = arguments.string("cache") ?? environment["BATCHKIT_CACHE_DIR"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            if maxMB != nil { throw UsageError("--cache-max-mb needs a cache (--cache DIR)") }
            return nil
        }
        do throws(BatchError) {
            return try FileResponseCache(
                directory: URL(fileURLWithPath: path), maxBytes: maxMB.map { $0 << 20 } ?? FileResponseCache.defaultMaxBytes)
        } catch {
            throw CommandFailure(error)
        }
    }

    /// Who answers, as the cache keys it: the provider and its base URL (two servers never share
    /// answers).
    static func cacheName(_ provider: ProviderOptions) -> String {
        "\(provider.provider.rawValue) \(provider.baseURL.absoluteString)"
    }
}

/// A processor behind a response cache when there is one, else the processor itself.
struct OptionallyCached<Base: Processor>: Processor {
    let base: Base
    let cache: FileResponseCache?
    let provider: String

    func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        guard let cache else { return base.processAsync(requests) }
        return base.cached(cache, provider: provider).processAsync(requests)
    }
}

extension Processor {
    /// This processor behind `cache`, if any (see ``OptionallyCached``).
    func withCache(_ cache: FileResponseCache?, provider: String) -> OptionallyCached<Self> {
        OptionallyCached(base: self, cache: cache, provider: provider)
    }
}
