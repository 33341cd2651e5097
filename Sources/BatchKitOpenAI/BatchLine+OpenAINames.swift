public import BatchKit
public import Foundation

// The batch-line interchange format is OpenAI's batch format; the core names it neutrally
// (`batchLine`, `outputLine`). These are the earlier, OpenAI-named spellings, kept so that code
// written against them still compiles.

extension BatchRequest {
    /// Reads one batch input line. Renamed `init(batchLine:lineNumber:)`.
    @available(*, deprecated, renamed: "init(batchLine:lineNumber:)")
    public init(openAIBatchLine line: JSONValue, lineNumber: Int? = nil) throws(BatchError) {
        try self.init(batchLine: line, lineNumber: lineNumber)
    }

    /// Reads one batch input line from its UTF-8 bytes. Renamed `init(batchLine:lineNumber:)`.
    @available(*, deprecated, renamed: "init(batchLine:lineNumber:)")
    public init(openAIBatchLine bytes: some Collection<UInt8>, lineNumber: Int? = nil) throws(BatchError) {
        try self.init(batchLine: bytes, lineNumber: lineNumber)
    }

    /// This request as a batch input line. Renamed ``BatchRequest/batchLine()``.
    @available(*, deprecated, renamed: "batchLine()")
    public func openAIBatchLine() -> JSONValue { batchLine() }

    /// This request as a batch input line of compact JSON. Renamed ``BatchRequest/batchLineData()``.
    @available(*, deprecated, renamed: "batchLineData()")
    public func openAIBatchLineData() -> Data { batchLineData() }

    /// Appends this request's batch input line to `out`. Renamed ``BatchRequest/writeBatchLine(into:)``.
    @available(*, deprecated, renamed: "writeBatchLine(into:)")
    public func writeOpenAIBatchLine(into out: inout [UInt8]) { writeBatchLine(into: &out) }

    /// The endpoint path of this request. Renamed ``BatchRequest/endpoint``.
    @available(*, deprecated, renamed: "endpoint")
    public var openAIEndpoint: String { endpoint }
}

extension BatchResult {
    /// This result as one batch output line. Renamed ``BatchResult/outputLine()``.
    @available(*, deprecated, renamed: "outputLine()")
    public func openAIOutputLine() -> JSONValue { outputLine() }

    /// The output line as compact JSON text. Renamed ``BatchResult/outputLineBytes()``.
    @available(*, deprecated, renamed: "outputLineBytes()")
    public func openAIOutputLineBytes() -> [UInt8] { outputLineBytes() }

    /// Restores a result from a batch output line. Renamed ``BatchResult/init(outputLine:)``.
    @available(*, deprecated, renamed: "init(outputLine:)")
    public init(openAIOutputLine line: JSONValue) throws(BatchError) { try self.init(outputLine: line) }
}
