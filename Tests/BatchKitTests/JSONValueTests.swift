import Foundation
import Testing

@testable import BatchKit

@Suite struct JSONValueTests {
    @Test func parsesAndSerializesRoundTrip() throws {
        let text = #"{"a":[1,2.5,-3,true,false,null],"b":{"c":"x\"y\\z\n\u00e9\ud83d\ude00"},"d":1e3,"e":""}"#
        let v = try JSONValue(parsing: text)
        #expect(v["a"]?[0] == .int(1))
        #expect(v["a"]?[1] == .double(2.5))
        #expect(v["a"]?[2] == .int(-3))
        #expect(v["b"]?["c"]?.stringValue == "x\"y\\z\né😀")
        #expect(v["d"] == .double(1000))
        let again = try JSONValue(parsing: v.serialized())
        #expect(again == v)
    }

    @Test func integersStayIntegers() throws {
        let v: JSONValue = ["max_tokens": 20, "temperature": 0.5, "n": 1.0]
        let s = v.jsonString
        #expect(s == #"{"max_tokens":20,"n":1.0,"temperature":0.5}"#)
        #expect(try JSONValue(parsing: s) == v)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "01x", "{} x", "\"\\q\""])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func errorNamesOffset() {
        do {
            _ = try JSONValue(parsing: "[1, 2, ?]")
            Issue.record("expected an error")
        } catch {
            #expect(error.offset == 7)
        }
    }

    @Test func agreesWithFoundation() throws {
        let text = #"{"x":[{"y":"ü","z":12345678901234},-0.25]}"#
        let mine = try JSONValue(parsing: text)
        let theirs = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(mine == theirs)
    }
}
