import BatchKit
import Foundation

extension AnthropicBatchBackend: ModelCheckingBackend {
    /// `GET /v1/models/{model_id}`: 200 for a model the key may use (aliases too), 401
    /// `authentication_error`, 404 `not_found_error`.
    package func checkModel(_ model: String) async throws -> Bool {
        _ = try await connection.sendJSON("GET", connection.url("/v1/models/" + ModelCheck.pathSegment(model)))
        return true
    }
}
