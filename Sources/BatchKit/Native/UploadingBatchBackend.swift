/// A backend whose jobs carry the intent's tag (OpenAI in its metadata, Gemini as its display
/// name) and whose create call can name the input file it uploaded before the job exists. It
/// writes only ``create(_:metadata:uploaded:)`` and, when its tag lives elsewhere than under
/// ``JobIntent/metadataKey``, ``tagged(_:with:)``; both `submit`s and ``BatchBackend/tagsJobs``
/// follow from them.
package protocol UploadingBatchBackend: BatchBackend {
    /// `metadata` with `intent.tag` where this provider keeps a job's tag.
    func tagged(_ metadata: [String: String], with intent: JobIntent) -> [String: String]

    /// Creates one job from already split items; `uploaded` gets the input file's id after the
    /// upload and before the create call, where there is a file.
    func create(
        _ items: [EncodedBatchItem], metadata: [String: String], uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob
}

extension UploadingBatchBackend {
    /// The tag under ``JobIntent/metadataKey``.
    package func tagged(_ metadata: [String: String], with intent: JobIntent) -> [String: String] {
        var tagged = metadata
        tagged[JobIntent.metadataKey] = intent.tag
        return tagged
    }

    package var tagsJobs: Bool { true }

    package func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        try await create(items, metadata: metadata, uploaded: { _ in })
    }

    package func submit(
        _ items: [EncodedBatchItem], metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        try await create(items, metadata: tagged(metadata, with: intent), uploaded: uploaded)
    }
}
