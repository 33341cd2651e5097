import BatchKit
import Foundation

/// Prompt prefixes the emulator has cached. Real time shares one per emulator; a batch uses its
/// own, filled in item order, so that its results are the same however often they are read.
struct EmulatorPromptCache: Sendable {
    var seen: Set<String> = []

    /// Whether `key` was cached already; caches it either way.
    mutating func use(_ key: String) -> Bool { !seen.insert(key).inserted }
}

/// Tool calling and prompt caching as the three providers do them: each checks the tool shape
/// it knows (another provider's shape gets that provider's 400), answers a required or named
/// tool choice with a deterministic call, and reports cache usage for repeated prefixes.
extension ProviderEmulator {
    /// The fewest prompt tokens a cache entry holds (Anthropic's and OpenAI's minimum; shorter
    /// prefixes are not cached and report no cache usage).
    static let minimumCacheableTokens = 1024

    /// Runs `body` with the shared real-time prompt cache.
    func withPromptCache<T>(_ body: (inout EmulatorPromptCache) -> T) -> T {
        var cache = promptCache.withLock { $0 }
        let result = body(&cache)
        promptCache.withLock { $0.seen.formUnion(cache.seen) }
        return result
    }

    // MARK: - OpenAI

    /// Checks that `tools`, when present, is an array of objects with a `type`, then calls `check`
    /// with each tool's index, the tool and its type: the first problem found, or `nil`. The part
    /// of OpenAI's tool checks that Chat Completions and the Responses API share.
    private static func forEachTool(
        _ body: JSONValue, _ check: (Int, JSONValue, String) -> (message: String, param: String, code: String)?
    ) -> (message: String, param: String, code: String)? {
        guard let tools = body["tools"] else { return nil }
        guard let list = tools.arrayValue else {
            return ("Invalid type for 'tools': expected an array, but got \(jsonTypeName(tools)) instead.", "tools", "invalid_type")
        }
        for (i, t) in list.enumerated() {
            guard let type = t["type"]?.stringValue else {
                return ("Missing required parameter: 'tools[\(i)].type'.", "tools[\(i)].type", "missing_required_parameter")
            }
            if let problem = check(i, t, type) { return problem }
        }
        return nil
    }

    /// OpenAI's check of `tools`, `tool_choice` and tool messages: its error (message, param,
    /// code), or `nil`.
    static func openAIToolProblem(_ body: JSONValue) -> (message: String, param: String, code: String)? {
        var names: [String] = []
        let toolProblem = forEachTool(body) { i, t, type in
            guard type == "function" || type == "custom" else {
                return ("Invalid value: '\(type)'. Supported values are: 'function' and 'custom'.", "tools[\(i)].type", "invalid_value")
            }
            guard let f = t[type] else {
                return ("Missing required parameter: 'tools[\(i)].\(type)'.", "tools[\(i)].\(type)", "missing_required_parameter")
            }
            guard let name = f["name"]?.stringValue else {
                return ("Missing required parameter: 'tools[\(i)].\(type).name'.", "tools[\(i)].\(type).name", "missing_required_parameter")
            }
            for k in (t.objectValue ?? [:]).keys.sorted() where k != "type" && k != type {
                return ("Unrecognized request argument supplied: tools[\(i)].\(k)", "tools[\(i)].\(k)", "unknown_parameter")
            }
            names.append(name)
            return nil
        }
        if let toolProblem { return toolProblem }
        switch body["tool_choice"] {
        case nil, "auto"?, "none"?: break
        case "required"?:
            if names.isEmpty {
                return ("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "invalid_value")
            }
        case .object(let o)?:
            guard o["type"] == "function", let name = o["function"]?["name"]?.stringValue else {
                return ("Missing required parameter: 'tool_choice.function'.", "tool_choice.function", "missing_required_parameter")
            }
            if !names.contains(name) {
                return ("Invalid value for 'tool_choice': no function named '\(name)' was specified in the 'tools' parameter.", "tool_choice",
                        "invalid_value")
            }
        case let other?:
            return ("Invalid value: '\(other.stringValue ?? other.jsonString)'. Supported values are: 'none', 'auto', and 'required'.",
                    "tool_choice", "invalid_value")
        }
        for (i, m) in (body["messages"]?.arrayValue ?? []).enumerated() {
            if m["role"] == "tool", m["tool_call_id"]?.stringValue == nil {
                return ("Missing required parameter: 'messages[\(i)].tool_call_id'.", "messages[\(i)].tool_call_id", "missing_required_parameter")
            }
            if m["cache_control"] != nil || (m["content"]?.arrayValue ?? []).contains(where: { $0["cache_control"] != nil }) {
                return ("Unrecognized request argument supplied: messages[\(i)].cache_control", "messages[\(i)].cache_control", "unknown_parameter")
            }
        }
        return nil
    }

    /// The function an OpenAI request must call: the named one, or the first for `required`.
    static func openAIForcedTool(_ body: JSONValue) -> (name: String, parameters: JSONValue)? {
        forcedTool(body, function: { $0["function"] }, chosen: { $0["function"]?["name"] })
    }

    /// The function tool `tool_choice` forces: the first for `required`, or the one whose name
    /// `chosen` reads from a `tool_choice` object. `function` gives a tool's function object:
    /// Chat Completions nests it under `function`, the Responses API does not.
    private static func forcedTool(
        _ body: JSONValue, function: (JSONValue) -> JSONValue?, chosen: ([String: JSONValue]) -> JSONValue?
    ) -> (name: String, parameters: JSONValue)? {
        let tools = (body["tools"]?.arrayValue ?? []).filter { $0["type"] == "function" }
        let pick: JSONValue?
        switch body["tool_choice"] {
        case "required"?: pick = tools.first
        case .object(let o)?:
            guard let name = chosen(o) else { return nil }
            pick = tools.first { function($0)?["name"] == name }
        default: pick = nil
        }
        guard let f = pick.flatMap(function), let name = f["name"]?.stringValue else { return nil }
        return (name, f["parameters"] ?? ["type": "object"])
    }

    /// The Responses API's check of `tools` and `tool_choice` (its flat shape: `{"type":"function",
    /// "name","parameters"}`, and `{"type":"function","name"}` to name one): its error, or `nil`.
    /// A Chat Completions tool (`{"type":"function","function":{…}}`) lacks `name` and gets the
    /// missing-parameter 400, as OpenAI answers it.
    static func openAIResponsesToolProblem(_ body: JSONValue) -> (message: String, param: String, code: String)? {
        var names: [String] = []
        let toolProblem = forEachTool(body) { i, t, type in
            guard type == "function" else { return nil }  // built-in tools (web_search, file_search, …) pass
            guard let name = t["name"]?.stringValue else {
                return ("Missing required parameter: 'tools[\(i)].name'.", "tools[\(i)].name", "missing_required_parameter")
            }
            if t["function"] != nil {
                return ("Unknown parameter: 'tools[\(i)].function'.", "tools[\(i)].function", "unknown_parameter")
            }
            names.append(name)
            return nil
        }
        if let toolProblem { return toolProblem }
        switch body["tool_choice"] {
        case nil, "auto"?, "none"?: break
        case "required"?:
            if body["tools"]?.arrayValue?.isEmpty ?? true {
                return ("Tool choice 'required' must be specified with 'tools' parameter.", "tool_choice", "invalid_value")
            }
        case .object(let o)?:
            guard o["type"] == "function" else { break }  // allowed_tools, built-in tool types
            guard let name = o["name"]?.stringValue else {
                return ("Missing required parameter: 'tool_choice.name'.", "tool_choice.name", "missing_required_parameter")
            }
            if !names.contains(name) {
                return ("Tool choice 'function' not found in 'tools' parameter.", "tool_choice", "invalid_value")
            }
        case let other?:
            return ("Invalid value: '\(other.stringValue ?? other.jsonString)'. Supported values are: 'none', 'auto', and 'required'.",
                    "tool_choice", "invalid_value")
        }
        return nil
    }

    /// The function a Responses API request must call: the named one, or the first function tool
    /// for `required`.
    static func openAIResponsesForcedTool(_ body: JSONValue) -> (name: String, parameters: JSONValue)? {
        forcedTool(body, function: { $0 }, chosen: { $0["type"] == "function" ? $0["name"] : nil })
    }

    /// The `tools` a Response echoes: function tools with `strict` (default true in the Responses
    /// API), `description` and `parameters` spelled out; other tools as sent.
    static func openAIResponsesTools(_ body: JSONValue) -> [JSONValue] {
        (body["tools"]?.arrayValue ?? []).map { t in
            guard t["type"] == "function", var o = t.objectValue else { return t }
            o["strict"] = o["strict"] ?? true
            o["description"] = o["description"] ?? .null
            o["parameters"] = o["parameters"] ?? .null
            return .object(o)
        }
    }

    /// The arguments of a forced call (OpenAI, Gemini): the schema filled from a seed of the prompt
    /// and the function's name, so the same request gets the same call; the seed also names the call.
    static func forcedCallArguments(_ parameters: JSONValue, prompt: String, name: String) -> (seed: UInt64, value: JSONValue) {
        var seed: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in (prompt + name).utf8 { seed = (seed ^ UInt64(b)) &* 0x100_0000_01b3 }
        return (seed, anthropicSyntheticJSON(parameters, seed: seed))
    }

    /// OpenAI's cached prompt tokens: with a `prompt_cache_key`, the messages before the last one,
    /// in 128-token steps from 1,024, are read from the cache when the same key and prefix came
    /// before.
    static func openAICachedTokens(_ body: JSONValue, cache: inout EmulatorPromptCache) -> Int {
        guard let key = body["prompt_cache_key"]?.stringValue, case .array(let messages)? = body["messages"], messages.count > 1 else {
            return 0
        }
        let prefix = openAIPrompt(.array(Array(messages.dropLast())))
        let tokens = tokenCount(prefix)
        guard tokens >= minimumCacheableTokens else { return 0 }
        let hit = cache.use("openai|\(key)|\(body["model"]?.stringValue ?? "")|\(prefix)")
        return hit ? tokens / 128 * 128 : 0
    }

    // MARK: - Anthropic

    /// Anthropic's check of `tools`, `tool_choice` and `cache_control` markers: its message (field
    /// path first), or `nil`.
    static func anthropicToolProblem(_ p: JSONValue) -> String? {
        func cacheProblem(_ v: JSONValue?, _ path: String) -> String? {
            guard let v else { return nil }
            guard v["type"] == "ephemeral" else { return "\(path).type: Input should be 'ephemeral'" }
            if let ttl = v["ttl"], ttl != "5m", ttl != "1h" { return "\(path).ttl: Input should be '5m' or '1h'" }
            for k in (v.objectValue ?? [:]).keys.sorted() where k != "type" && k != "ttl" {
                return "\(path).\(k): Extra inputs are not permitted"
            }
            return nil
        }
        var names: [String] = []
        if let tools = p["tools"] {
            guard let list = tools.arrayValue else { return "tools: Input should be a valid list" }
            for (i, t) in list.enumerated() {
                if let type = t["type"]?.stringValue, type != "custom" {
                    // Server tools carry a dated type (`web_search_20250305`); anything else is foreign.
                    guard type.range(of: #"_\d{8}$"#, options: .regularExpression) != nil else {
                        return "tools.\(i).type: Input tag '\(type)' found using 'type' does not match any of the expected tags: 'custom', 'bash_20250124', 'text_editor_20250728', 'web_search_20250305'"
                    }
                    names.append(t["name"]?.stringValue ?? type)
                    continue
                }
                guard let name = t["name"]?.stringValue else { return "tools.\(i).custom.name: Field required" }
                guard t["input_schema"]?.objectValue != nil else { return "tools.\(i).custom.input_schema: Field required" }
                for k in (t.objectValue ?? [:]).keys.sorted()
                where !["type", "name", "description", "input_schema", "cache_control", "strict"].contains(k) {
                    return "tools.\(i).custom.\(k): Extra inputs are not permitted"
                }
                if let problem = cacheProblem(t["cache_control"], "tools.\(i).custom.cache_control") { return problem }
                names.append(name)
            }
        }
        if let choice = p["tool_choice"] {
            guard let type = choice["type"]?.stringValue else {
                return "tool_choice: Input should be a valid dictionary or object to extract fields from"
            }
            switch type {
            case "auto", "any", "none": break
            case "tool":
                let name = choice["name"]?.stringValue
                if name == nil || !names.contains(name!) { return "tool_choice.name: Tool '\(name ?? "")' not found in tools" }
            default:
                return "tool_choice: Input tag '\(type)' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            }
            if let d = choice["disable_parallel_tool_use"], d.boolValue == nil {
                return "tool_choice.\(type).disable_parallel_tool_use: Input should be a valid boolean"
            }
        }
        if case .array(let blocks)? = p["system"] {
            for (j, b) in blocks.enumerated() {
                if let problem = cacheProblem(b["cache_control"], "system.\(j).cache_control") { return problem }
            }
        }
        var breakpoints = (p["system"]?.arrayValue ?? []).filter { $0["cache_control"] != nil }.count
        breakpoints += (p["tools"]?.arrayValue ?? []).filter { $0["cache_control"] != nil }.count
        for (i, m) in (p["messages"]?.arrayValue ?? []).enumerated() {
            for (j, b) in (m["content"]?.arrayValue ?? []).enumerated() {
                if let problem = cacheProblem(b["cache_control"], "messages.\(i).content.\(j).cache_control") { return problem }
                if b["cache_control"] != nil { breakpoints += 1 }
                switch b["type"]?.stringValue {
                case "tool_use"?:
                    if b["id"]?.stringValue == nil { return "messages.\(i).content.\(j).tool_use.id: Field required" }
                    if b["input"]?.objectValue == nil { return "messages.\(i).content.\(j).tool_use.input: Input should be a valid dictionary" }
                case "tool_result"?:
                    if b["tool_use_id"]?.stringValue == nil { return "messages.\(i).content.\(j).tool_result.tool_use_id: Field required" }
                default: break
                }
            }
        }
        if breakpoints > 4 { return "A maximum of 4 blocks with cache_control may be provided. Found \(breakpoints)." }
        return nil
    }

    /// The prompt up to the last cache breakpoint (tools, then system, then messages) and whether
    /// that breakpoint asks for one hour; `nil` without a breakpoint.
    static func anthropicCachePrefix(_ p: JSONValue) -> (text: String, oneHour: Bool)? {
        var text = ""
        var found: (text: String, oneHour: Bool)?
        func mark(_ block: JSONValue) {
            if let cc = block["cache_control"] { found = (text, cc["ttl"] == "1h") }
        }
        for t in p["tools"]?.arrayValue ?? [] {
            text += t.jsonString + "\n"
            mark(t)
        }
        if let s = p["system"]?.stringValue { text += s + "\n" }
        for b in p["system"]?.arrayValue ?? [] {
            text += (b["text"]?.stringValue ?? "") + "\n"
            mark(b)
        }
        for m in p["messages"]?.arrayValue ?? [] {
            if let s = m["content"]?.stringValue { text += s + "\n" }
            for b in m["content"]?.arrayValue ?? [] {
                text += (b["text"]?.stringValue ?? b["content"]?.stringValue ?? b["input"]?.jsonString ?? "") + "\n"
                mark(b)
            }
        }
        return found
    }

    /// Anthropic's cache usage of a request: tokens written and read, and whether the write was
    /// for one hour. A prefix of fewer than 1,024 tokens is not cached.
    static func anthropicCacheUsage(_ p: JSONValue, cache: inout EmulatorPromptCache) -> (write: Int, read: Int, oneHour: Bool) {
        guard let prefix = anthropicCachePrefix(p) else { return (0, 0, false) }
        let tokens = tokenCount(prefix.text)
        guard tokens >= minimumCacheableTokens else { return (0, 0, false) }
        let hit = cache.use("anthropic|\(p["model"]?.stringValue ?? "")|\(prefix.text)")
        return hit ? (0, tokens, false) : (tokens, 0, prefix.oneHour)
    }

    // MARK: - Gemini

    /// Gemini's check of `tools`, `toolConfig` and `cachedContent`: its message, or `nil`.
    static func geminiToolProblem(_ body: JSONValue) -> String? {
        let knownTool: Set<String> = [
            "functionDeclarations", "function_declarations", "googleSearch", "google_search", "googleSearchRetrieval",
            "codeExecution", "code_execution", "urlContext", "url_context", "retrieval", "computerUse", "fileSearch",
        ]
        if let tools = gField(body, "tools") {
            guard let list = tools.arrayValue else {
                return "Invalid JSON payload received. Unknown name \"tools\": Proto field is not repeating, cannot start list."
            }
            for (i, t) in list.enumerated() {
                for k in (t.objectValue ?? [:]).keys.sorted() where !knownTool.contains(k) {
                    return "Invalid JSON payload received. Unknown name \"\(k)\" at 'tools[\(i)]': Cannot find field."
                }
                for (j, d) in (gField(t, "functionDeclarations")?.arrayValue ?? []).enumerated() {
                    guard d["name"]?.stringValue != nil else {
                        return "* GenerateContentRequest.tools[\(i)].function_declarations[\(j)].name: Name cannot be empty."
                    }
                    for k in (d.objectValue ?? [:]).keys.sorted()
                    where !["name", "description", "parameters", "parametersJsonSchema", "parameters_json_schema", "response",
                            "responseJsonSchema", "behavior"].contains(k)
                    {
                        return "Invalid JSON payload received. Unknown name \"\(k)\" at 'tools[\(i)].function_declarations[\(j)]': Cannot find field."
                    }
                }
            }
        }
        if let mode = gField(gField(gField(body, "toolConfig"), "functionCallingConfig"), "mode")?.stringValue,
            !["AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"].contains(mode)
        {
            return "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"\(mode)\""
        }
        if let name = gField(body, "cachedContent") {
            guard let s = name.stringValue, s.hasPrefix("cachedContents/") else {
                return "* GenerateContentRequest.cached_content: Invalid CachedContent name: must be of the form cachedContents/{id}"
            }
        }
        return nil
    }

    /// The function a Gemini request must call (mode `ANY`): the first allowed name, else the
    /// first declaration.
    static func geminiForcedFunction(_ body: JSONValue) -> (name: String, parameters: JSONValue)? {
        let config = gField(gField(body, "toolConfig"), "functionCallingConfig")
        guard gField(config, "mode") == "ANY" else { return nil }
        let declarations = (gField(body, "tools")?.arrayValue ?? []).flatMap { gField($0, "functionDeclarations")?.arrayValue ?? [] }
        let allowed = (gField(config, "allowedFunctionNames")?.arrayValue ?? []).compactMap(\.stringValue)
        let pick = allowed.isEmpty ? declarations.first : declarations.first { allowed.contains($0["name"]?.stringValue ?? "") }
        guard let d = pick, let name = d["name"]?.stringValue else { return nil }
        return (name, gField(d, "parametersJsonSchema") ?? gField(d, "parameters") ?? ["type": "object"])
    }

    /// The tokens of a named cached content: it is not stored by the emulator, so its size is
    /// derived from its name (1,024–2,047 tokens, the same for the same name).
    static func geminiCachedContentTokens(_ name: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return 1024 + Int(h % 1024)
    }
}
