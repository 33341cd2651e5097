import BatchKit
import Foundation

/// One stored file of the emulated Files API.
struct OpenAIFileRecord {
    var id: String
    var filename: String
    var purpose: String
    var createdAt: Int
    var expiresAt: Int?
    /// The contents, stored once (on disk when large) and shared with the batches that read it.
    var content: EmulatorBlob

    var json: JSONValue {
        [
            "id": .string(id), "object": "file", "bytes": .int(content.count), "created_at": .int(createdAt),
            "expires_at": expiresAt.map(JSONValue.int) ?? .null, "filename": .string(filename), "purpose": .string(purpose),
            "status": "processed", "status_details": nil,
        ]
    }
}

extension ProviderEmulator {
    /// Largest batch input file OpenAI accepts.
    static let openAIMaxBatchFileBytes = 200 * 1024 * 1024
    static let openAIPurposes: Set<String> = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]

    /// `POST /v1/files` (multipart: `file`, `purpose`, optional `expires_after[anchor]`/`[seconds]`).
    func openAIUploadFile(_ request: EmulatorRequest, route: OpenAIRoute) -> EmulatorResponse {
        let parts: [MultipartPart]
        do {
            // The parts share the body's storage: the file is stored from it with no copy in memory.
            parts = try MultipartForm.parse(body: request.body, contentType: request.headers["Content-Type"] ?? "", sharingStorage: true)
        } catch {
            return openAIError(status: 400, message: "Invalid multipart/form-data body: \(error)")
        }
        guard let purposePart = parts.first(where: { $0.name == "purpose" }) else {
            return openAIError(status: 400, message: "Missing required parameter: 'purpose'.", param: "purpose",
                                 code: "missing_required_parameter")
        }
        let purpose = String(decoding: purposePart.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard Self.openAIPurposes.contains(purpose) else {
            return openAIError(status: 400,
                message: "'\(purpose)' is not one of ['fine-tune', 'assistants', 'batch', 'user_data', 'vision', 'evals'] - 'purpose'",
                param: "purpose")
        }
        guard let file = parts.first(where: { $0.name == "file" }) else {
            return openAIError(status: 400, message: "Missing required parameter: 'file'.", param: "file",
                                 code: "missing_required_parameter")
        }
        let filename = file.filename ?? "upload"
        if purpose == "batch" {
            guard filename.lowercased().hasSuffix(".jsonl") else {
                return openAIError(status: 400, message: "Invalid file format for Batch API. Must be .jsonl")
            }
            guard file.data.count <= Self.openAIMaxBatchFileBytes else {
                return openAIError(status: 400, message: "File is too large.")
            }
        }
        let created = unixNow
        var expires: Int? = purpose == "batch" ? created + 30 * 86_400 : nil
        if let seconds = parts.first(where: { $0.name == "expires_after[seconds]" }).flatMap({ Int(String(decoding: $0.data, as: UTF8.self)) }) {
            guard (3600...2_592_000).contains(seconds) else {
                return openAIError(status: 400,
                    message: "Invalid 'expires_after.seconds': expected a value between 3600 and 2592000.", param: "expires_after.seconds")
            }
            expires = created + seconds
        }
        let record = OpenAIFileRecord(
            id: newID("file-", hexDigits: 22), filename: filename, purpose: purpose, createdAt: created, expiresAt: expires,
            content: EmulatorBlob(file.data))
        openAIState.withLock { s in
            s.files[record.id] = record
            s.fileOrder.append(record.id)
        }
        return .json(200, record.json, headers: openAIHeaders())
    }

    /// Stores a file the emulator wrote itself (batch output and error files).
    func openAIStoreFile(_ s: inout OpenAIEmulatorState, filename: String, purpose: String, content: EmulatorBlob) -> String {
        let created = unixNow
        let record = OpenAIFileRecord(
            id: newID("file-", hexDigits: 22), filename: filename, purpose: purpose, createdAt: created,
            expiresAt: created + 30 * 86_400, content: content)
        s.files[record.id] = record
        s.fileOrder.append(record.id)
        return record.id
    }

    func openAINoSuchFile(_ id: String) -> EmulatorResponse {
        openAIError(status: 404, message: "No such File object: \(id)", param: "id")
    }

    /// `GET /v1/files?purpose=&limit=&order=&after=`.
    func openAIListFiles(_ request: EmulatorRequest) -> EmulatorResponse {
        let limit = request.query["limit"].flatMap(Int.init) ?? 10_000
        guard (1...10_000).contains(limit) else {
            return openAIError(status: 400, message: "Invalid 'limit': expected a value between 1 and 10000.", param: "limit")
        }
        let order = request.query["order"] ?? "desc"
        guard order == "asc" || order == "desc" else {
            return openAIError(status: 400, message: "Invalid value: '\(order)'. Supported values are: 'asc' and 'desc'.", param: "order")
        }
        let purpose = request.query["purpose"]
        let all: [OpenAIFileRecord] = openAIState.withLock { s in
            let ids = order == "desc" ? Array(s.fileOrder.reversed()) : s.fileOrder
            return ids.compactMap { s.files[$0] }.filter { purpose == nil || $0.purpose == purpose }
        }
        return .json(200, Self.openAIPage(all, after: request.query["after"], limit: limit, id: \.id, json: \.json), headers: openAIHeaders())
    }

    /// A cursor page: the items after `after` (by id), at most `limit`, with `first_id`,
    /// `last_id` and `has_more`.
    static func openAIPage<T>(_ items: [T], after: String?, limit: Int, id: (T) -> String, json: (T) -> JSONValue) -> JSONValue {
        var start = 0
        if let after, let i = items.firstIndex(where: { id($0) == after }) { start = i + 1 }
        let page = items[start...].prefix(limit)
        return [
            "object": "list", "data": .array(page.map(json)),
            "first_id": page.first.map { .string(id($0)) } ?? .null, "last_id": page.last.map { .string(id($0)) } ?? .null,
            "has_more": .bool(start + page.count < items.count),
        ]
    }

    /// `GET /v1/files/{id}`.
    func openAIRetrieveFile(_ id: String) -> EmulatorResponse {
        guard let record = openAIState.withLock({ $0.files[id] }) else { return openAINoSuchFile(id) }
        return .json(200, record.json, headers: openAIHeaders())
    }

    /// `GET /v1/files/{id}/content`: the bytes.
    func openAIFileContent(_ id: String) -> EmulatorResponse {
        guard let content = openAIState.withLock({ $0.files[id]?.content }) else { return openAINoSuchFile(id) }
        return .file(content, contentType: "application/octet-stream", headers: openAIHeaders())
    }

    /// `DELETE /v1/files/{id}`.
    func openAIDeleteFile(_ id: String) -> EmulatorResponse {
        let existed = openAIState.withLock { s -> Bool in
            guard s.files.removeValue(forKey: id) != nil else { return false }
            s.fileOrder.removeAll { $0 == id }
            return true
        }
        guard existed else { return openAINoSuchFile(id) }
        return .json(200, ["id": .string(id), "object": "file", "deleted": true], headers: openAIHeaders())
    }

    /// Whether a file exists (tests use it to check that deletes happened).
    public func openAIFileExists(_ id: String) -> Bool { openAIState.withLock { $0.files[id] != nil } }

    /// Ids of every stored OpenAI file, oldest first.
    public var openAIFileIDs: [String] { openAIState.withLock { $0.fileOrder } }
}
