import BatchKit
import BatchKitGemini
import Foundation
import Testing

@Suite struct GeminiRetryDelayTests {
    @Test func googleRetryInfo() throws {
        let body = try JSONValue(parsing: #"{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.Help"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"29.5s"}]}}"#)
        #expect(GeminiWire.retryDelay(body) == .milliseconds(29500))
        let wrapped = try JSONValue(parsing: #"[{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2s"}]}}]"#)
        #expect(GeminiWire.retryDelay(wrapped) == .seconds(2))
        #expect(GeminiWire.protobufDuration("1.5s") == .milliseconds(1500))
        #expect(GeminiWire.protobufDuration("5") == nil)
    }
}
