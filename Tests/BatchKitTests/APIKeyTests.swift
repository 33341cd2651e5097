import BatchKit
import Foundation
import Testing

@Suite struct APIKeyTests {
    @Test func neverPrints() throws {
        let key = try #require(APIKey("sk-secret-123"))
        struct Holder { let key: APIKey }
        var dumped = ""
        dump(Holder(key: key), to: &dumped)
        for text in [key.description, key.debugDescription, String(describing: Holder(key: key)), dumped] {
            #expect(!text.contains("sk-secret-123"))
        }
        #expect(key.redact("bad key sk-secret-123 given") == "bad key <redacted> given")
        #expect(APIKey("abc")?.redact("abc") == "abc")  // too short to mask safely
    }

    @Test func emptyMeansNoneAndEnvironmentIsTheFallback() {
        #expect(APIKey(nil) == nil)
        #expect(APIKey("") == nil)
        #expect(APIKey("", environment: "PATH") == nil)  // an explicit empty key is "no key"
        #expect(APIKey(nil, environment: "BATCHKIT_SURELY_UNSET", "PATH")?.value == ProcessInfo.processInfo.environment["PATH"])
        #expect(APIKey("given", environment: "PATH")?.value == "given")
    }
}
