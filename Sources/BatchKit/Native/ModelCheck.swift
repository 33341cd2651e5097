import Foundation

/// A ``BatchBackend`` whose provider can say, before any job is created, whether a model exists
/// for the key: OpenAI `GET /v1/models/{model}`, Anthropic `GET /v1/models/{model_id}`, Gemini
/// `GET /v1beta/models/{model}`. One cheap call instead of a job of 50,000 lines that all fail.
package protocol ModelCheckingBackend: BatchBackend {
    /// Asks the provider's models endpoint about `model`. Returns `true` when the provider knows
    /// it, `false` when this backend cannot ask (e.g. Azure deployments); throws the provider's
    /// error otherwise (a wrong key, an unknown model), or when it could not be asked (network, 5xx).
    func checkModel(_ model: String) async throws -> Bool
}

/// What a provider's models endpoint said about a model before any native job was created
/// (``NativeBatchProcessor/checkModel(_:)``).
public enum ModelCheck: Sendable {
    /// The provider knows the model and accepted the key.
    case accepted
    /// The provider refused: a wrong key, no access, an unknown model. The error (code
    /// ``BatchError/Code/systematicFailure``) says what failed and how to fix it; creating a job
    /// would only fail every request.
    case refused(BatchError)
    /// The check could not tell (the backend has no models endpoint, the network failed, a 5xx,
    /// an answer it could not read): go on; the error is what went wrong, when something did.
    case inconclusive(BatchError?)

    /// Asks `backend` about `model` and classifies the answer: 401/403 (Gemini: 400
    /// `API_KEY_INVALID`) and a 404 naming the model are refusals; anything else is inconclusive.
    package static func check(_ backend: any BatchBackend, model: String) async -> ModelCheck {
        guard let checking = backend as? any ModelCheckingBackend else { return .inconclusive(nil) }
        do {
            return try await checking.checkModel(model) ? .accepted : .inconclusive(nil)
        } catch {
            let e = BatchError(wrapping: error)
            switch e.code {
            case .authentication, .permission:
                return .refused(refusal(e, model: model))
            case .notFound where e.message.contains(model):
                // A 404 about the model itself (a server without the route answers a 404 that
                // does not name it: inconclusive).
                return .refused(refusal(e, model: model))
            default:
                return .inconclusive(e)
            }
        }
    }

    /// `model` as one percent-encoded path segment (`/`, `?`, `#` and `%` escaped).
    package static func pathSegment(_ model: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return model.addingPercentEncoding(withAllowedCharacters: allowed) ?? model
    }

    static func refusal(_ e: BatchError, model: String) -> BatchError {
        BatchError(
            .systematicFailure,
            "the provider refused the model \"\(model)\" of the first request before any batch job was created: "
                + "\(e.description). \(e.systematicFixHint)",
            httpStatus: e.httpStatus, providerType: e.providerType, field: e.field, isRetryable: false)
    }
}

extension NativeBatchProcessor {
    /// Asks the provider's models endpoint whether `model` exists for this key, before a job is
    /// created: a wrong key or an unknown model then costs one cheap call instead of a job whose
    /// every request fails. `batchkit run` does this for the first request of native and hybrid
    /// runs (unless `--max-consecutive-failures 0`).
    ///
    /// ```swift
    /// if case .refused(let error) = await processor.checkModel("gpt-4o-mini") {
    ///     print(error.message)  // nothing was submitted
    /// }
    /// ```
    ///
    /// A network error or a server error is ``ModelCheck/inconclusive(_:)``: it must not stop a
    /// run that may well succeed.
    public func checkModel(_ model: String) async -> ModelCheck {
        await ModelCheck.check(backend, model: model)
    }
}
