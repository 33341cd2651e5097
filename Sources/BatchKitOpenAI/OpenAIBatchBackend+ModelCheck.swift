import BatchKit
import Foundation

extension OpenAIBatchBackend: ModelCheckingBackend {
    /// `GET /v1/models/{model}`: 200 when the key may use the model, 401 for a wrong key, 404
    /// `model_not_found`. Azure OpenAI is not asked (its requests name deployments, not models):
    /// returns `false`.
    package func checkModel(_ model: String) async throws -> Bool {
        guard !api.isAzure else { return false }
        _ = try await api.connection.sendJSON("GET", api.url("/v1/models/" + ModelCheck.pathSegment(model)))
        return true
    }
}
