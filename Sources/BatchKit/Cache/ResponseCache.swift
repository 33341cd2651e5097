import Foundation

/// A store of successful answers, keyed by what was asked: a rerun, or another run asking the same
/// thing, is answered from it at no cost and without a request reaching the provider.
///
/// Wrap any processor with ``Processor/cached(_:provider:)`` (``CachingProcessor``): hits are
/// answered by the wrapper and marked ``BatchResult/Route/cache``; misses go to the processor and
/// their successes are stored. ``FileResponseCache`` is the implementation on disk; conform your
/// own type to keep answers elsewhere (a database, an object store).
///
/// ```swift
/// let cache = try FileResponseCache(directory: URL(fileURLWithPath: ".batchkit-cache"))
/// let processor = ConcurrentProcessor(client: client).cached(cache, provider: "openai")
/// ```
///
/// Both requirements are best-effort: a cache that cannot read answers a miss, one that cannot
/// write drops the answer. Neither ever fails a request.
public protocol ResponseCache: Sendable {
    /// The stored answer for `key`, or `nil` on a miss.
    func lookup(_ key: ResponseCacheKey) async -> ModelResponse?
    /// Stores a successful answer under `key`, replacing any earlier one.
    func store(_ response: ModelResponse, for key: ResponseCacheKey) async
}

/// What makes two requests the same for a ``ResponseCache``: a SHA-256 digest of the provider,
/// the endpoint and the normalized body.
///
/// Two requests are **identical** when all of these are equal:
/// - `provider`: the string the caller names the answering side with (`batchkit run` uses the
///   provider and its base URL, e.g. `openai https://api.openai.com/v1`), so different servers
///   never share answers;
/// - the endpoint path (``BatchRequest/endpoint``, e.g. `/v1/chat/completions`);
/// - the body in the batch-line format (``BatchRequest/batchLine()``'s `body`: model, messages,
///   max tokens, temperature, tools, response format, `extra`...), **canonicalised**: object
///   members sorted by name, no whitespace, integral numbers written as integers (`1.0` and `1`
///   are the same), strings compared by their UTF-8 bytes as written.
///
/// Not part of the key: the custom id, ``BatchRequest/metadata`` (the caller's labels), a body's
/// own top-level `metadata` member (labels the provider stores, which do not change the answer),
/// and Anthropic `cache_control` breakpoints (they change what prompt caching bills, not the
/// answer). Everything else counts: a different `temperature`, `seed` or message order is a
/// different request. Sampled answers (temperature above 0) are cached like any other: the first
/// success is the answer every identical request gets.
public struct ResponseCacheKey: Sendable, Hashable, CustomStringConvertible {
    /// 64 lowercase hex digits.
    public let digest: String

    /// The key of `request` sent to `provider`.
    public init(provider: String, request: BatchRequest) {
        self.init(provider: provider, endpoint: request.endpoint, body: BatchLine.body(of: request.body, cacheMarkers: false))
    }

    /// The key of a body posted to `endpoint` of `provider`.
    package init(provider: String, endpoint: String, body: JSONValue) {
        var normalized = Self.canonical(body)
        if case .object(var o) = normalized {
            o["metadata"] = nil
            normalized = .object(o)
        }
        var bytes = Array("batchkit-response-cache-v1\n".utf8)
        JSONValue.writeString(provider, into: &bytes)
        bytes.append(0x0A)
        JSONValue.writeString(endpoint, into: &bytes)
        bytes.append(0x0A)
        normalized.write(into: &bytes)
        digest = SHA256.hex(bytes)
    }

    public var description: String { digest }

    /// Integral doubles as integers, all the way down (members are sorted when written).
    static func canonical(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e15: return .int(Int(d))
        case .array(let a): return .array(a.map(canonical))
        case .object(let o): return .object(o.mapValues(canonical))
        default: return value
        }
    }
}
