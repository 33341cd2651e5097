import Foundation

/// One message of a chat conversation.
///
/// ```swift
/// let m = Message.user("Describe this picture", images: [.url("https://example.com/cat.png")])
/// ```
public struct Message: Sendable, Hashable {
    /// Who speaks. Open-ended: providers add roles over time.
    public struct Role: RawRepresentable, Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }
        public var description: String { rawValue }

        public static let system: Role = "system"
        public static let developer: Role = "developer"
        public static let user: Role = "user"
        public static let assistant: Role = "assistant"
        public static let tool: Role = "tool"
    }

    /// A message body: plain text, or a list of parts (text and images).
    public enum Content: Sendable, Hashable {
        case text(String)
        case parts([ContentPart])

        /// All text of the content, parts joined without separator.
        public var text: String {
            switch self {
            case .text(let s): return s
            case .parts(let parts):
                return parts.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined()
            }
        }

        /// The content as a list of parts.
        public var parts: [ContentPart] {
            switch self {
            case .text(let s): return [.text(s)]
            case .parts(let p): return p
            }
        }
    }

    public var role: Role
    public var content: Content
    /// The tool calls of an assistant turn (conversation history). Anthropic writes them as
    /// `tool_use` blocks, Gemini as `functionCall` parts.
    public var toolCalls: [ToolCall]
    /// For a ``Role/tool`` message: the id of the call it answers (OpenAI `tool_call_id`,
    /// Anthropic `tool_result.tool_use_id`; Gemini's `functionResponse` names the function of
    /// that call instead, found among the earlier assistant turns).
    public var toolCallID: String?
    /// A prompt-cache breakpoint after this message (Anthropic `cache_control` on its last
    /// content block); see ``CacheControl``.
    public var cacheControl: CacheControl?
    /// Message fields BatchKit does not model (`name`, ...), written verbatim by providers that
    /// accept them.
    public var extra: [String: JSONValue]

    public init(
        role: Role, content: Content, extra: [String: JSONValue] = [:], toolCalls: [ToolCall] = [],
        toolCallID: String? = nil, cacheControl: CacheControl? = nil
    ) {
        self.role = role
        self.content = content
        self.extra = extra
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.cacheControl = cacheControl
    }

    /// An assistant turn that called tools (conversation history), with optional text.
    public static func assistant(_ text: String = "", toolCalls: [ToolCall]) -> Message {
        Message(role: .assistant, content: text.isEmpty ? .parts([]) : .text(text), toolCalls: toolCalls)
    }

    /// The result of a tool call, answering the call with id `callID`.
    public static func toolResult(callID: String, _ text: String) -> Message {
        Message(role: .tool, content: .text(text), toolCallID: callID)
    }

    /// A user message with plain text.
    public static func user(_ text: String) -> Message { Message(role: .user, content: .text(text)) }
    /// A user message with text followed by images.
    public static func user(_ text: String, images: [ImagePart]) -> Message {
        Message(role: .user, content: .parts([.text(text)] + images.map(ContentPart.image)))
    }
    /// An assistant message (for few-shot prompts or conversation history).
    public static func assistant(_ text: String) -> Message { Message(role: .assistant, content: .text(text)) }
    /// A system message. Prefer `ChatRequest.system`, which every provider can express.
    public static func system(_ text: String) -> Message { Message(role: .system, content: .text(text)) }
}

/// One part of a multi-part message.
public enum ContentPart: Sendable, Hashable {
    case text(String)
    case image(ImagePart)
    /// A part of a kind BatchKit does not model (audio, files, ...), kept verbatim in the OpenAI
    /// wire shape. Providers that cannot express it fail validation naming the field.
    case other(JSONValue)
}

/// An image given by URL (including `data:` URLs) or by inline base64 data.
public struct ImagePart: Sendable, Hashable {
    public enum Source: Sendable, Hashable {
        /// An `https:` or `data:` URL.
        case url(String)
        /// Inline bytes, base64-encoded, with their media type (`image/png`, ...).
        case base64(mediaType: String, data: String)
    }

    public var source: Source
    /// OpenAI's `detail` (`low`, `high`, `auto`); ignored by providers without it.
    public var detail: String?

    public init(source: Source, detail: String? = nil) {
        self.source = source
        self.detail = detail
    }

    /// An image at a URL.
    public static func url(_ url: String, detail: String? = nil) -> ImagePart {
        ImagePart(source: .url(url), detail: detail)
    }

    /// An image from inline base64 data.
    public static func base64(_ data: String, mediaType: String) -> ImagePart {
        ImagePart(source: .base64(mediaType: mediaType, data: data))
    }

    /// The image as inline data when the source is a `data:` URL or inline bytes.
    package var inlineData: (mediaType: String, data: String)? {
        switch source {
        case .base64(let mediaType, let data): return (mediaType, data)
        case .url(let url):
            guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return nil }
            let header = url[url.index(url.startIndex, offsetBy: 5)..<comma]
            guard header.hasSuffix(";base64") else { return nil }
            return (String(header.dropLast(7)), String(url[url.index(after: comma)...]))
        }
    }
}
