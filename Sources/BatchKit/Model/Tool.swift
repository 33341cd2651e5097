import Foundation

/// A function the model may call: a name, a description and the JSON Schema of its arguments.
///
/// Written as OpenAI `tools[].function`, Anthropic `tools[]` (`input_schema`) and Gemini
/// `tools[].functionDeclarations[]` (`parametersJsonSchema`).
///
/// ```swift
/// let weather = Tool(name: "get_weather", description: "Current weather of a city",
///                    parameters: ["type": "object", "properties": ["city": ["type": "string"]],
///                                 "required": ["city"]])
/// let chat = ChatRequest(model: "gpt-4o-mini", messages: [.user("Weather in Paris?")],
///                        tools: [weather], toolChoice: .required)
/// ```
public struct Tool: Sendable, Hashable {
    /// The function's name (`^[a-zA-Z0-9_-]{1,64}$` is accepted by every provider).
    public var name: String
    /// What the function does; the model reads it to decide when to call it.
    public var description: String?
    /// The JSON Schema of the arguments (an object schema), or `nil` for a function without
    /// arguments.
    public var parameters: JSONValue?
    /// OpenAI's and Anthropic's `strict` flag (arguments that always conform to the schema).
    /// Gemini has no such flag: setting it fails validation there.
    public var strict: Bool?
    /// A prompt-cache breakpoint after this tool (Anthropic `cache_control`). OpenAI and Gemini
    /// cache prompt prefixes on their own and are sent no marker.
    public var cacheControl: CacheControl?

    public init(
        name: String, description: String? = nil, parameters: JSONValue? = nil, strict: Bool? = nil,
        cacheControl: CacheControl? = nil
    ) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.strict = strict
        self.cacheControl = cacheControl
    }
}

/// Whether and which tool the model must call.
public enum ToolChoice: Sendable, Hashable {
    /// The model decides (OpenAI `auto`, Anthropic `{"type":"auto"}`, Gemini mode `AUTO`).
    case auto
    /// No tool call (OpenAI `none`, Anthropic `{"type":"none"}`, Gemini mode `NONE`).
    case none
    /// At least one tool call (OpenAI `required`, Anthropic `{"type":"any"}`, Gemini mode `ANY`).
    case required
    /// A call of the named tool (OpenAI `{"type":"function","function":{"name"}}`, Anthropic
    /// `{"type":"tool","name"}`, Gemini mode `ANY` with `allowedFunctionNames: [name]`).
    case tool(String)
}

/// One tool call of the model: in an answer (``ModelResponse/toolCalls``) or in an assistant
/// message of the conversation history (``Message/toolCalls``).
public struct ToolCall: Sendable, Hashable {
    /// The call's id, echoed by the tool-result message that answers it (OpenAI `call_…`,
    /// Anthropic `toolu_…`; Gemini sends none, so BatchKit names Gemini calls `call_<index>`
    /// unless the answer carried an `id`).
    public var id: String
    /// The called tool's name.
    public var name: String
    /// The arguments. Normally a JSON object; when OpenAI sends arguments that are not valid JSON,
    /// the string as it came.
    public var arguments: JSONValue

    public init(id: String, name: String, arguments: JSONValue) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A prompt-cache breakpoint: the prompt up to and including the marked element is cached
/// (Anthropic `cache_control: {"type": "ephemeral", "ttl": ...}`).
///
/// Only Anthropic takes breakpoints. OpenAI caches prompt prefixes automatically (steer it with
/// ``ChatRequest/promptCacheKey``) and Gemini caches implicitly or through a named cache
/// (``ChatRequest/cachedContent``); neither is sent the marker.
public struct CacheControl: Sendable, Hashable {
    /// How long the cache entry lives.
    public enum TTL: String, Sendable, Hashable {
        /// Five minutes (Anthropic's default): writes cost 1.25× input.
        case fiveMinutes = "5m"
        /// One hour: writes cost 2× input.
        case oneHour = "1h"
    }

    /// The lifetime; `nil` sends no `ttl` (Anthropic's five minutes).
    public var ttl: TTL?

    public init(ttl: TTL? = nil) { self.ttl = ttl }

    /// A five-minute breakpoint (`{"type":"ephemeral"}`).
    public static let ephemeral = CacheControl()
    /// A one-hour breakpoint (`{"type":"ephemeral","ttl":"1h"}`).
    public static let oneHour = CacheControl(ttl: .oneHour)

    /// The wire form, the same for the interchange line and Anthropic:
    /// `{"type":"ephemeral"}` or `{"type":"ephemeral","ttl":"1h"}`.
    package var json: JSONValue {
        var o: [String: JSONValue] = ["type": "ephemeral"]
        if let ttl { o["ttl"] = .string(ttl.rawValue) }
        return .object(o)
    }

    /// Reads the wire form; `nil` for anything else (another `type`, an unknown `ttl` or member).
    package init?(json: JSONValue) {
        guard case .object(let o) = json, o["type"] == "ephemeral" else { return nil }
        switch o["ttl"] {
        case nil: if o.count != 1 { return nil }
        case .string(let s)?:
            guard o.count == 2, let ttl = TTL(rawValue: s) else { return nil }
            self.ttl = ttl
        default: return nil
        }
    }
}

extension ToolCall {
    /// Arguments as OpenAI writes them: the JSON text of ``arguments`` (compact, keys sorted), or
    /// the string itself when ``arguments`` is a string that arrived unparsed.
    package var argumentsText: String {
        if case .string(let s) = arguments { return s }
        return arguments.jsonString
    }

    /// Parses OpenAI's `arguments` text: the JSON it holds, or the text as a string when it is
    /// not valid JSON (a model can produce broken arguments; they are kept, not dropped).
    package static func arguments(parsing text: String) -> JSONValue {
        switch try? JSONValue(parsing: text) {
        case .object(let o)?: return .object(o)
        case .array(let a)?: return .array(a)
        default: return .string(text)  // not JSON, or a scalar: kept as the text, which writes back the same
        }
    }
}
