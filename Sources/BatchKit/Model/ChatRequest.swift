import Foundation

/// A provider-neutral chat request.
///
/// Every field is translated to each provider's own mechanism. A field a provider cannot express
/// makes the request fail validation, before anything is sent, with an error naming the field.
///
/// ```swift
/// let chat = ChatRequest(model: "gpt-4o-mini", messages: [.user("Capital of France?")],
///                        system: "Answer in one word.", maxTokens: 10)
/// ```
public struct ChatRequest: Sendable, Hashable {
    public var model: String
    public var messages: [Message]
    /// A system prompt. OpenAI receives it as a leading `system` message, Anthropic as `system`,
    /// Gemini as `systemInstruction`.
    public var system: String?
    /// Maximum output tokens.
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    /// Stop sequences.
    public var stop: [String]?
    public var seed: Int?
    public var responseFormat: ResponseFormat?
    /// Fields merged verbatim into the provider body (they override what BatchKit writes).
    public var extra: [String: JSONValue]
    /// Functions the model may call. Empty: no `tools` sent.
    public var tools: [Tool]
    /// Whether and which tool the model must call; `nil` leaves it to the provider (auto).
    public var toolChoice: ToolChoice?
    /// Whether several tool calls may come in one answer (OpenAI `parallel_tool_calls`, Anthropic
    /// `tool_choice.disable_parallel_tool_use` when `false`). Gemini has no switch: `false` fails
    /// validation there.
    public var parallelToolCalls: Bool?
    /// A prompt-cache breakpoint after the system prompt (Anthropic `cache_control` on the last
    /// `system` block); see ``CacheControl``.
    public var systemCacheControl: CacheControl?
    /// OpenAI's `prompt_cache_key`: requests sharing a long prefix and a key are routed to the
    /// same cache. OpenAI only: other providers fail validation naming `prompt_cache_key`.
    public var promptCacheKey: String?
    /// The name of a Gemini cached content (`cachedContents/…`) holding the prompt's prefix.
    /// Gemini only: other providers fail validation naming `cached_content`.
    public var cachedContent: String?
    /// When `true`, the OpenAI encoding writes the legacy `max_tokens` instead of
    /// `max_completion_tokens`. Set when parsing an OpenAI line that used `max_tokens`, so it
    /// round-trips; set it yourself for OpenAI-compatible servers that only know the old name.
    public var usesLegacyMaxTokens: Bool

    public init(
        model: String,
        messages: [Message],
        system: String? = nil,
        maxTokens: Int? = nil,
        temperature: Double? = nil,
        topP: Double? = nil,
        stop: [String]? = nil,
        seed: Int? = nil,
        responseFormat: ResponseFormat? = nil,
        extra: [String: JSONValue] = [:],
        usesLegacyMaxTokens: Bool = false,
        tools: [Tool] = [],
        toolChoice: ToolChoice? = nil,
        parallelToolCalls: Bool? = nil,
        systemCacheControl: CacheControl? = nil,
        promptCacheKey: String? = nil,
        cachedContent: String? = nil
    ) {
        self.model = model
        self.messages = messages
        self.system = system
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.stop = stop
        self.seed = seed
        self.responseFormat = responseFormat
        self.extra = extra
        self.usesLegacyMaxTokens = usesLegacyMaxTokens
        self.tools = tools
        self.toolChoice = toolChoice
        self.parallelToolCalls = parallelToolCalls
        self.systemCacheControl = systemCacheControl
        self.promptCacheKey = promptCacheKey
        self.cachedContent = cachedContent
    }
}

extension ChatRequest {
    /// Whether the request uses tools, tool choice, parallel-call control or a caching field.
    package var usesToolsOrCaching: Bool {
        !tools.isEmpty || toolChoice != nil || parallelToolCalls != nil || systemCacheControl != nil || promptCacheKey != nil
            || cachedContent != nil
    }

    /// Whether any Anthropic-style cache breakpoint is set (system, a message or a tool).
    package var hasCacheBreakpoints: Bool {
        systemCacheControl != nil || messages.contains { $0.cacheControl != nil } || tools.contains { $0.cacheControl != nil }
    }
}

/// The shape of the answer.
public enum ResponseFormat: Sendable, Hashable {
    /// Free text (the default).
    case text
    /// Any JSON object.
    case jsonObject
    /// JSON conforming to a JSON Schema.
    case jsonSchema(JSONSchemaFormat)
}

/// A named JSON Schema for structured output.
public struct JSONSchemaFormat: Sendable, Hashable {
    public var name: String
    public var schema: JSONValue
    public var description: String?
    /// OpenAI's `strict` flag.
    public var strict: Bool?

    public init(name: String, schema: JSONValue, description: String? = nil, strict: Bool? = nil) {
        self.name = name
        self.schema = schema
        self.description = description
        self.strict = strict
    }
}

/// A provider-neutral embedding request: one or more texts in, one vector per text out.
public struct EmbeddingRequest: Sendable, Hashable {
    public var model: String
    /// The texts to embed, in order.
    public var inputs: [String]
    /// Requested vector size, for models that support it.
    public var dimensions: Int?
    /// Fields merged verbatim into the provider body.
    public var extra: [String: JSONValue]
    /// `true` when the request was given as a single string rather than a list (kept so an OpenAI
    /// line round-trips exactly).
    public var isSingleInput: Bool

    public init(model: String, inputs: [String], dimensions: Int? = nil, extra: [String: JSONValue] = [:]) {
        self.model = model
        self.inputs = inputs
        self.dimensions = dimensions
        self.extra = extra
        self.isSingleInput = false
    }

    /// A request for one text.
    public init(model: String, input: String, dimensions: Int? = nil, extra: [String: JSONValue] = [:]) {
        self.init(model: model, inputs: [input], dimensions: dimensions, extra: extra)
        self.isSingleInput = true
    }
}

/// A request for an endpoint BatchKit does not model (`/v1/responses`, `/v1/completions`,
/// `/v1/moderations`, ...), kept verbatim and sent as is by the OpenAI paths.
public struct RawRequest: Sendable, Hashable {
    /// The OpenAI-style endpoint path, e.g. `/v1/responses`.
    public var endpoint: String
    /// The JSON body, exactly as it will be posted.
    public var body: JSONValue

    public init(endpoint: String, body: JSONValue) {
        self.endpoint = endpoint
        self.body = body
    }

    /// The `model` field of the body, when there is one (users read ``BatchRequest/model``).
    package var model: String? { body["model"]?.stringValue }
}
