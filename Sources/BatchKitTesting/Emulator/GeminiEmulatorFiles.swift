import BatchKit
import Foundation

/// A file of the emulated Gemini Files API: uploaded (batch input) or generated (batch results,
/// `files/batch-<batch id>`).
struct GeminiEmulatedFile {
    var id: String
    var displayName: String?
    var mimeType: String
    /// The contents, stored once (on disk when large) and shared with the batches that read it.
    var content: EmulatorBlob
    /// Emulator time of creation.
    var created: Duration
    var generated: Bool
}

/// A resumable upload between `start` and `finalize`.
struct GeminiPendingUpload {
    var displayName: String?
    var mimeType: String
    var data = Data()
}

extension ProviderEmulator {
    /// Uploaded files expire 48 hours after creation.
    static let geminiFileLifetime: Duration = .seconds(48 * 3600)

    func geminiDate(_ offset: Duration) -> Date { startDate.addingTimeInterval(offset.seconds) }

    func geminiTime(_ offset: Duration) -> JSONValue { .string(Self.rfc3339(geminiDate(offset), fractionDigits: 9)) }

    var geminiBase: String {
        var b = configuration.publicBaseURL.absoluteString
        while b.hasSuffix("/") { b.removeLast() }
        return b
    }

    /// The File resource (proto3 JSON: `sizeBytes` as a string, empty fields omitted).
    func geminiFileJSON(_ f: GeminiEmulatedFile, version: String = "v1beta") -> JSONValue {
        var o: [String: JSONValue] = [
            "name": .string("files/" + f.id), "mimeType": .string(f.mimeType), "sizeBytes": .string(String(f.content.count)),
            "createTime": geminiTime(f.created), "updateTime": geminiTime(f.created),
            "uri": .string("\(geminiBase)/\(version)/files/\(f.id)"), "state": "ACTIVE",
            "source": f.generated ? "GENERATED" : "UPLOADED",
        ]
        if let d = f.displayName, !d.isEmpty { o["displayName"] = .string(d) }
        if !f.generated { o["expirationTime"] = geminiTime(f.created + Self.geminiFileLifetime) }
        if f.generated { o["downloadUri"] = .string("\(geminiBase)/download/\(version)/files/\(f.id):download?alt=media") }
        return .object(o)
    }

    /// A file that exists and has not expired.
    func geminiLiveFile(_ id: String, in s: GeminiEmulatorState) -> GeminiEmulatedFile? {
        guard let f = s.files[id] else { return nil }
        if !f.generated, elapsed - f.created >= Self.geminiFileLifetime { return nil }
        return f
    }

    func geminiNotFound(_ what: String) -> EmulatorResponse {
        errorResponse(.gemini, status: 404, message: "Requested entity was not found. (\(what))", type: "NOT_FOUND")
    }

    // MARK: - Resumable upload

    /// `POST /upload/{v}/files` with `X-Goog-Upload-Command: start`: answers with the upload URL
    /// (pointing back at ``EmulatorConfiguration/publicBaseURL``) and no body.
    func geminiUploadStart(_ r: EmulatorRequest, version: String) -> EmulatorResponse {
        let command = r.headers["X-Goog-Upload-Command"]?.lowercased() ?? ""
        guard r.headers["X-Goog-Upload-Protocol"]?.lowercased() == "resumable", command.contains("start") else {
            return errorResponse(.gemini, status: 400,
                message: "Only the resumable upload protocol is supported (X-Goog-Upload-Protocol: resumable, X-Goog-Upload-Command: start).",
                type: "INVALID_ARGUMENT")
        }
        let meta = r.json.flatMap { $0["file"] }
        let displayName = (Self.gField(meta, "displayName"))?.stringValue
        let mime = r.headers["X-Goog-Upload-Header-Content-Type"] ?? Self.gField(meta, "mimeType")?.stringValue ?? "application/octet-stream"
        let uploadID = newID("", hexDigits: 48)
        geminiState.withLock { $0.uploads[uploadID] = GeminiPendingUpload(displayName: displayName, mimeType: mime) }
        let url = "\(geminiBase)/upload/\(version)/files?upload_id=\(uploadID)&upload_protocol=resumable"
        return EmulatorResponse(status: 200, headers: [
            "x-goog-upload-url": url, "x-goog-upload-status": "active", "x-goog-upload-chunk-granularity": "8388608",
            "Content-Type": "text/plain; charset=utf-8",
        ])
    }

    /// `POST <upload url>`: `upload` appends a chunk at `X-Goog-Upload-Offset`; `finalize`
    /// creates the file and answers `{"file": File}` with `x-goog-upload-status: final`;
    /// `query` reports the bytes received.
    func geminiUploadBytes(_ r: EmulatorRequest) -> EmulatorResponse {
        let uploadID = r.query["upload_id"] ?? ""
        let command = (r.headers["X-Goog-Upload-Command"] ?? "").lowercased()
        let version = r.path.contains("/v1beta/") ? "v1beta" : "v1"
        enum Outcome { case missing, badOffset(Int), query(Int), active(Int), final(GeminiPendingUpload) }
        let outcome: Outcome = geminiState.withLock { s in
            // Taken out while it grows, so appending does not copy what the record still holds.
            guard var upload = s.uploads.removeValue(forKey: uploadID) else { return .missing }
            if command.contains("query") {
                s.uploads[uploadID] = upload
                return .query(upload.data.count)
            }
            if command.contains("upload") {
                let offset = Int(r.headers["X-Goog-Upload-Offset"] ?? "0") ?? 0
                guard offset == upload.data.count else {
                    s.uploads[uploadID] = upload
                    return .badOffset(upload.data.count)
                }
                // A copy, never the request's own storage (a file body is mapped for the request only).
                if upload.data.isEmpty { upload.data = r.body.withUnsafeBytes { Data($0) } } else { upload.data.append(r.body) }
            }
            guard command.contains("finalize") else {
                s.uploads[uploadID] = upload
                return .active(upload.data.count)
            }
            return .final(upload)
        }
        switch outcome {
        case .missing:
            return errorResponse(.gemini, status: 404, message: "Upload session not found or already finalized.", type: "NOT_FOUND")
        case .badOffset(let received):
            return errorResponse(.gemini, status: 400, message: "Invalid upload offset; \(received) bytes received so far.",
                type: "INVALID_ARGUMENT", headers: ["x-goog-upload-size-received": String(received)])
        case .query(let n):
            return EmulatorResponse(status: 200, headers: ["x-goog-upload-status": "active", "x-goog-upload-size-received": String(n)])
        case .active(let n):
            return EmulatorResponse(status: 200, headers: ["x-goog-upload-status": "active", "x-goog-upload-size-received": String(n)])
        case .final(let upload):
            // Stored once, written to disk outside the lock when large.
            let content = EmulatorBlob(upload.data)
            let id = newID("", hexDigits: 12)
            let file = GeminiEmulatedFile(
                id: id, displayName: upload.displayName, mimeType: upload.mimeType, content: content, created: elapsed, generated: false)
            geminiState.withLock { s in
                s.files[id] = file
                s.fileOrder.append(id)
            }
            return .json(200, ["file": geminiFileJSON(file, version: version)], headers: ["x-goog-upload-status": "final"])
        }
    }

    // MARK: - Files

    func geminiGetFile(id: String) -> EmulatorResponse {
        guard let f = geminiState.withLock({ geminiLiveFile(id, in: $0) }) else { return geminiNotFound("files/\(id)") }
        return .json(200, geminiFileJSON(f))
    }

    func geminiDeleteFile(id: String) -> EmulatorResponse {
        let existed = geminiState.withLock { s -> Bool in
            guard s.files.removeValue(forKey: id) != nil else { return false }
            s.fileOrder.removeAll { $0 == id }
            return true
        }
        return existed ? .json(200, [:]) : geminiNotFound("files/\(id)")
    }

    /// `GET files?pageSize=&pageToken=`: newest first, `nextPageToken` absent on the last page.
    func geminiListFiles(_ r: EmulatorRequest) -> EmulatorResponse {
        let files: [GeminiEmulatedFile] = geminiState.withLock { s in
            s.fileOrder.reversed().compactMap { geminiLiveFile($0, in: s) }
        }
        let (page, next) = Self.geminiPage(files, r, defaultSize: 10, maxSize: 100)
        var body: [String: JSONValue] = [:]
        if !page.isEmpty { body["files"] = .array(page.map { geminiFileJSON($0) }) }
        if let next { body["nextPageToken"] = .string(next) }
        return .json(200, .object(body))
    }

    /// One page of `items` by the request's `pageSize` and `pageToken` (an opaque offset).
    static func geminiPage<T>(_ items: [T], _ r: EmulatorRequest, defaultSize: Int, maxSize: Int) -> ([T], String?) {
        let size = min(maxSize, max(1, Int(r.query["pageSize"] ?? r.query["page_size"] ?? "") ?? defaultSize))
        let token = r.query["pageToken"] ?? r.query["page_token"] ?? ""
        let start = token.isEmpty ? 0 : (Data(base64Encoded: token).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0)
        guard start < items.count else { return ([], nil) }
        let end = min(items.count, start + size)
        let next = end < items.count ? Data(String(end).utf8).base64EncodedString() : nil
        return (Array(items[start..<end]), next)
    }

    /// `GET /download/{v}/files/{id}:download?alt=media` (also without `/download`): the bytes of
    /// a generated file. Uploaded files cannot be downloaded.
    func geminiDownload(id: String) -> EmulatorResponse {
        guard let f = geminiState.withLock({ geminiLiveFile(id, in: $0) }) else { return geminiNotFound("files/\(id)") }
        guard f.generated else {
            return errorResponse(.gemini, status: 400, message: "Only generated files can be downloaded.", type: "INVALID_ARGUMENT")
        }
        return .file(f.content, contentType: f.mimeType)
    }
}
