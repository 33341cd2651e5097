import BatchKit
import Foundation

extension GeminiBatchBackend: ModelCheckingBackend {
    /// `GET /v1beta/models/{model}`: 200 for a known model, 400 with reason `API_KEY_INVALID` for
    /// a wrong key, 404 `NOT_FOUND` for an unknown model. Tuned models (`tunedModels/…`) are
    /// not asked: returns `false`.
    package func checkModel(_ model: String) async throws -> Bool {
        let resource = GeminiWire.modelResource(model)
        guard resource.hasPrefix("models/") else { return false }
        _ = try await api.connection.sendJSON("GET", api.url(resource))  // api.url percent-encodes the path
        return true
    }
}
