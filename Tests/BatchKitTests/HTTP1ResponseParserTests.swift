import Foundation
import Testing

@testable import BatchKit

/// Every answer is fed in each of these piece sizes: byte by byte, odd splits that cut status
/// lines, CRLFs, chunk-size lines and chunk data in every place, and all at once.
private let pieceSizes = [1, 2, 3, 7, 64, 100_000]

private typealias ParseFailure = HTTP1ResponseParser.Failure

private func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Feeds one piece through `feed(_:)`'s raw-buffer interface, keeping the typed error.
private func feedPiece(_ parser: inout HTTP1ResponseParser, _ piece: ArraySlice<UInt8>) throws(ParseFailure) -> Bool {
    var result: Result<Bool, ParseFailure> = .success(false)
    piece.withUnsafeBytes { buffer in
        do throws(ParseFailure) {
            result = .success(try parser.feed(buffer))
        } catch {
            result = .failure(error)
        }
    }
    return try result.get()
}

/// Feeds `data` to `parser` in pieces of `pieceSize` bytes. Returns how many bytes had been fed
/// when `feed` first returned `true`, or `nil` if it never did. Records an issue if `feed`'s
/// result ever disagrees with `isComplete`, or goes back to `false` after a `true`.
@discardableResult
private func feed(
    _ parser: inout HTTP1ResponseParser, _ data: [UInt8], pieceSize: Int, sourceLocation: SourceLocation = #_sourceLocation
) throws(ParseFailure) -> Int? {
    precondition(pieceSize > 0)
    var completedAt: Int?
    var offset = 0
    while offset < data.count {
        let end = min(offset + pieceSize, data.count)
        let done = try feedPiece(&parser, data[offset..<end])
        if done != parser.isComplete {
            Issue.record("feed returned \(done) but isComplete is \(parser.isComplete)", sourceLocation: sourceLocation)
        }
        if completedAt != nil && !done {
            Issue.record("feed returned false after it had returned true", sourceLocation: sourceLocation)
        }
        if done && completedAt == nil { completedAt = end }
        offset = end
    }
    return completedAt
}

/// `parser.finishAtEndOfStream()`, callable inside `#expect` (which cannot call mutating methods).
private func finishAtEndOfStream(_ parser: inout HTTP1ResponseParser) -> Bool { parser.finishAtEndOfStream() }

/// Where feeding `total` bytes in pieces of `pieceSize` must first report completion when the
/// answer ends after `answerEnd` bytes: the end of the piece that holds the answer's last byte.
private func completionPoint(answerEnd: Int, total: Int, pieceSize: Int) -> Int {
    min((answerEnd + pieceSize - 1) / pieceSize * pieceSize, total)
}

/// Bytes of every value 0...255, CR and LF included, so a body can't be mistaken for text.
private func binaryPattern(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
}

struct StatusLineCase: Sendable, CustomTestStringConvertible {
    var line: String
    var code: Int
    var testDescription: String { line.debugDescription }
}

struct KeepAliveCase: Sendable, CustomTestStringConvertible {
    var version: String
    var connectionHeader: String?
    var keepAlive: Bool
    var testDescription: String { "\(version) Connection: \(connectionHeader ?? "(none)") → \(keepAlive)" }
}

struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var response: String
    var reason: String
    var testDescription: String { name }
}

@Suite("HTTP1ResponseParser") struct HTTP1ResponseParserTests {
    static let statusLines: [StatusLineCase] = [
        .init(line: "HTTP/1.1 200 OK", code: 200),
        .init(line: "HTTP/1.1 404 Not Found", code: 404),
        .init(line: "HTTP/1.1 503 Service Temporarily Unavailable", code: 503),
        .init(line: "HTTP/1.1 418 I'm a teapot: short and stout", code: 418),
        .init(line: "HTTP/1.1 429", code: 429),
        .init(line: "HTTP/1.1 201 ", code: 201),
        .init(line: "HTTP/1.0 302 Found", code: 302),
        .init(line: "HTTP/1.1 999 Custom", code: 999),
    ]

    // MARK: - Content-Length

    @Test(arguments: pieceSizes)
    func contentLengthBodyStatusAndHeaders(pieceSize: Int) throws {
        let body = binaryPattern(300) + ascii("\r\n\r\nX-Not-A-Header: x\r\n")
        let head =
            "HTTP/1.1 200 OK\r\n"
            + "Content-Type: application/json\r\n"
            + "Set-Cookie: a=1\r\n"
            + "X-Padded: \t  inner  spaces kept \t \r\n"
            + "X-Empty:\r\n"
            + "set-cookie: b=2\r\n"
            + "Content-Length: \(body.count)\r\n"
            + "X-Colons: a:b: c\r\n"
            + "\r\n"
        let data = ascii(head) + body
        var parser = HTTP1ResponseParser()
        let completedAt = try feed(&parser, data, pieceSize: pieceSize)

        #expect(completedAt == data.count)
        #expect(parser.isComplete)
        #expect(parser.status == 200)
        #expect(parser.body == body)
        #expect(parser.keepAlive)
        #expect(parser.leftover.isEmpty)
        #expect(parser.receivedAnyBytes)
        // Every field line is kept, in order, with its name's spelling; duplicates included.
        #expect(
            parser.headers.fields.map(\.name) == [
                "Content-Type", "Set-Cookie", "X-Padded", "X-Empty", "set-cookie", "Content-Length", "X-Colons",
            ])
        #expect(
            parser.headers.fields.map(\.value) == [
                "application/json", "a=1", "inner  spaces kept", "", "b=2", "\(body.count)", "a:b: c",
            ])
        #expect(parser.headers["CONTENT-TYPE"] == "application/json")
        #expect(parser.headers["content-length"] == "\(body.count)")
        #expect(parser.headers["Set-Cookie"] == "a=1")
        #expect(parser.headers.filter { $0.name.lowercased() == "set-cookie" }.map(\.value) == ["a=1", "b=2"])
        #expect(parser.headers["x-empty"] == "")
        #expect(parser.headers["X-Missing"] == nil)
        // Already complete: the end of the stream changes nothing.
        #expect(finishAtEndOfStream(&parser))
        #expect(parser.keepAlive)
        #expect(parser.body == body)
    }

    @Test(arguments: statusLines, pieceSizes)
    func statusLinesWithAndWithoutReasonPhrase(statusLine: StatusLineCase, pieceSize: Int) throws {
        let data = ascii("\(statusLine.line)\r\nContent-Length: 3\r\n\r\nabc")
        var parser = HTTP1ResponseParser()
        let completedAt = try feed(&parser, data, pieceSize: pieceSize)
        #expect(completedAt == data.count)
        #expect(parser.status == statusLine.code)
        #expect(parser.body == ascii("abc"))
        #expect(parser.headers.fields.count == 1)
    }

    @Test(arguments: pieceSizes)
    func contentLengthZero(pieceSize: Int) throws {
        let head = ascii("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Id: 7\r\n\r\n")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, head, pieceSize: pieceSize) == head.count)
        #expect(parser.isComplete)
        #expect(parser.body.isEmpty)
        #expect(parser.keepAlive)
        #expect(parser.headers["x-id"] == "7")
        #expect(parser.leftover.isEmpty)

        // Bytes right after the head belong to the next answer, not to this body.
        let withNext = head + ascii("NEXT")
        var second = HTTP1ResponseParser()
        let completedAt = try feed(&second, withNext, pieceSize: pieceSize)
        #expect(completedAt == completionPoint(answerEnd: head.count, total: withNext.count, pieceSize: pieceSize))
        #expect(second.body.isEmpty)
        #expect(Array(second.leftover) == ascii("NEXT"))
    }

    @Test(arguments: pieceSizes)
    func contentLengthBodyLargerThan64KiB(pieceSize: Int) throws {
        let body = binaryPattern(200_000)
        let head = ascii("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n")
        let tail = ascii("tail bytes")
        let data = head + body + tail
        var parser = HTTP1ResponseParser()
        let completedAt = try feed(&parser, data, pieceSize: pieceSize)
        #expect(completedAt == completionPoint(answerEnd: head.count + body.count, total: data.count, pieceSize: pieceSize))
        #expect(parser.isComplete)
        #expect(parser.body.count == body.count)
        #expect(parser.body == body)
        #expect(Array(parser.leftover) == tail)
    }

    @Test(arguments: pieceSizes)
    func identicalRepeatedContentLengthValuesAreAccepted(pieceSize: Int) throws {
        for lengthField in ["Content-Length: 5, 5", "Content-Length: 5,5", "Content-Length:  5 ,5 , 5 ", "Content-Length: 5\r\nContent-Length: 5"] {
            let data = ascii("HTTP/1.1 200 OK\r\n\(lengthField)\r\n\r\nhello")
            var parser = HTTP1ResponseParser()
            let completedAt = try feed(&parser, data, pieceSize: pieceSize)
            #expect(completedAt == data.count, "\(lengthField)")
            #expect(parser.body == ascii("hello"), "\(lengthField)")
        }
    }

    // MARK: - Chunked

    @Test(arguments: pieceSizes)
    func chunkedBodyWithSeveralChunksSizesAndExtensions(pieceSize: Int) throws {
        let chunks: [(sizeLine: String, data: [UInt8])] = [
            ("5", ascii("Hello")),
            ("1A", ascii("abcdefghijklmnopqrstuvwxyz")),  // upper-case hex
            ("b", ascii(" world\r\n!!!")),  // lower-case hex; CRLF inside the data is data
            ("aB", binaryPattern(0xAB)),  // mixed case
            ("5", ascii("0\r\n\r\n")),  // data that looks like the last chunk
            ("A;name=value", ascii("0123456789")),  // extension
            ("3;a=\"x;y\";flag", ascii("end")),  // quoted extension value, several extensions
            ("4 ; spaced=1", ascii("tail")),  // whitespace before the extension
            ("00000002", ascii("!!")),  // leading zeros
        ]
        var data = ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-After: 1\r\n\r\n")
        for chunk in chunks { data += ascii("\(chunk.sizeLine)\r\n") + chunk.data + ascii("\r\n") }
        data += ascii("0\r\n\r\n")

        var parser = HTTP1ResponseParser()
        let completedAt = try feed(&parser, data, pieceSize: pieceSize)
        #expect(completedAt == data.count)
        #expect(parser.isComplete)
        #expect(parser.status == 200)
        #expect(parser.body == chunks.flatMap(\.data))
        #expect(parser.headers["transfer-encoding"] == "chunked")
        #expect(parser.headers["x-after"] == "1")
        #expect(parser.keepAlive)
        #expect(parser.leftover.isEmpty)
    }

    @Test(arguments: pieceSizes)
    func chunkedTrailersAreDroppedAndTheAnswerEndsAtTheEmptyLine(pieceSize: Int) throws {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Expires, X-Checksum\r\n\r\n"
        let data = ascii(
            head + "4\r\nWiki\r\n6;x=y\r\npedia \r\n0;final=yes\r\n"
                + "Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Checksum: abc\r\n\r\n")

        var parser = HTTP1ResponseParser()
        // Everything but the final CRLF: the trailer section is not over yet.
        #expect(try feed(&parser, Array(data.dropLast(2)), pieceSize: pieceSize) == nil)
        #expect(!parser.isComplete)
        #expect(try feedPiece(&parser, data[(data.count - 2)..<(data.count - 1)]) == false)
        #expect(!parser.isComplete)
        #expect(try feedPiece(&parser, data.suffix(1)))
        #expect(parser.isComplete)
        #expect(parser.body == ascii("Wikipedia "))
        #expect(parser.headers["Expires"] == nil)
        #expect(parser.headers["X-Checksum"] == nil)
        #expect(parser.headers.fields.map(\.name) == ["Transfer-Encoding", "Trailer"])
        #expect(parser.leftover.isEmpty)

        // The same in one go, with the next answer's bytes behind it.
        let next = ascii("HTTP/1.1 204 No Content\r\n\r\n")
        var again = HTTP1ResponseParser()
        let completedAt = try feed(&again, data + next, pieceSize: pieceSize)
        #expect(completedAt == completionPoint(answerEnd: data.count, total: data.count + next.count, pieceSize: pieceSize))
        #expect(again.body == ascii("Wikipedia "))
        #expect(Array(again.leftover) == next)
    }

    @Test(arguments: pieceSizes)
    func incompleteChunkedAnswerIsNotComplete(pieceSize: Int) throws {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        let cuts = [
            head,
            head + "5",  // size line without CRLF
            head + "5\r\n",  // no data yet
            head + "5\r\nHel",  // part of the data
            head + "5\r\nHello",  // data without its CRLF
            head + "5\r\nHello\r",  // half the CRLF
            head + "5\r\nHello\r\n",  // no last chunk
            head + "5\r\nHello\r\n0\r\n",  // last chunk without the empty line
            head + "5\r\nHello\r\n0\r\nX-Trailer: 1\r\n",  // trailer without the empty line
            head + "5\r\nHello\r\n0\r\n\r",  // half the final CRLF
        ]
        for cut in cuts {
            var parser = HTTP1ResponseParser()
            #expect(try feed(&parser, ascii(cut), pieceSize: pieceSize) == nil, "\(cut.debugDescription)")
            #expect(!parser.isComplete, "\(cut.debugDescription)")
            #expect(!finishAtEndOfStream(&parser), "\(cut.debugDescription)")
            #expect(!parser.isComplete, "\(cut.debugDescription)")
        }
    }

    @Test(arguments: pieceSizes)
    func largeChunksAndLargeLeftover(pieceSize: Int) throws {
        let first = binaryPattern(70_000)
        let second = Array(binaryPattern(0x1000).reversed())
        let answer =
            ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            + ascii("\(String(70_000, radix: 16))\r\n") + first + ascii("\r\n")
            + ascii("1000\r\n") + second + ascii("\r\n")
            + ascii("1\r\nZ\r\n0\r\n\r\n")
        let extra = binaryPattern(80_000)
        let data = answer + extra
        var parser = HTTP1ResponseParser()
        let completedAt = try feed(&parser, data, pieceSize: pieceSize)
        #expect(completedAt == completionPoint(answerEnd: answer.count, total: data.count, pieceSize: pieceSize))
        #expect(parser.body == first + second + ascii("Z"))
        #expect(parser.leftover.count == extra.count)
        #expect(Array(parser.leftover) == extra)
    }

    /// No proper prefix of a delimited answer is a whole answer, and none ends it at end of stream.
    @Test(arguments: pieceSizes)
    func everyProperPrefixIsIncomplete(pieceSize: Int) throws {
        let answers = [
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello, world",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ]
        for answer in answers.map(ascii) {
            for length in 0..<answer.count {
                var parser = HTTP1ResponseParser()
                let completedAt = try feed(&parser, Array(answer[..<length]), pieceSize: pieceSize)
                #expect(completedAt == nil, "prefix of \(length) bytes of \(String(decoding: answer, as: UTF8.self).debugDescription)")
                #expect(!finishAtEndOfStream(&parser), "prefix of \(length) bytes")
                #expect(parser.receivedAnyBytes == (length > 0))
            }
            var parser = HTTP1ResponseParser()
            #expect(try feed(&parser, answer, pieceSize: pieceSize) == answer.count)
        }
    }

    // MARK: - Read until close

    @Test(arguments: pieceSizes)
    func bodyWithoutLengthRunsToTheClose(pieceSize: Int) throws {
        let body = ascii("first line\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc") + binaryPattern(1000)
        for head in [
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
        ] {
            var parser = HTTP1ResponseParser()
            #expect(try feed(&parser, ascii(head) + body, pieceSize: pieceSize) == nil, "\(head.debugDescription)")
            #expect(!parser.isComplete)
            #expect(parser.status == 200)
            #expect(finishAtEndOfStream(&parser))
            #expect(parser.isComplete)
            #expect(!parser.keepAlive)
            #expect(parser.body == body)
            #expect(parser.leftover.isEmpty)
            #expect(finishAtEndOfStream(&parser))  // still complete
        }
    }

    @Test(arguments: pieceSizes)
    func emptyBodyRunningToTheClose(pieceSize: Int) throws {
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, ascii("HTTP/1.1 500 Internal Server Error\r\nX-A: b\r\n\r\n"), pieceSize: pieceSize) == nil)
        #expect(finishAtEndOfStream(&parser))
        #expect(parser.status == 500)
        #expect(parser.body.isEmpty)
        #expect(!parser.keepAlive)
    }

    @Test(arguments: pieceSizes)
    func transferEncodingNotEndingInChunkedRunsToTheClose(pieceSize: Int) throws {
        let raw = ascii("5\r\nhello\r\n0\r\n\r\n") + binaryPattern(500)
        for encodingFields in [
            "Transfer-Encoding: gzip",
            "Transfer-Encoding: chunked, gzip",
            "Transfer-Encoding: gzip\r\nContent-Length: 3",  // Transfer-Encoding overrides Content-Length
            "Content-Length: 3\r\nTransfer-Encoding: identity",
        ] {
            var parser = HTTP1ResponseParser()
            let data = ascii("HTTP/1.1 200 OK\r\n\(encodingFields)\r\n\r\n") + raw
            #expect(try feed(&parser, data, pieceSize: pieceSize) == nil, "\(encodingFields)")
            #expect(!parser.isComplete, "\(encodingFields)")
            #expect(finishAtEndOfStream(&parser), "\(encodingFields)")
            #expect(!parser.keepAlive, "\(encodingFields)")
            #expect(parser.body == raw, "\(encodingFields)")
        }
    }

    @Test(arguments: pieceSizes)
    func transferEncodingEndingInChunkedIsChunked(pieceSize: Int) throws {
        for encodingFields in [
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: CHUNKED",
            "transfer-encoding:  Chunked ",
            "Content-Length: 100\r\nTransfer-Encoding: chunked",  // Transfer-Encoding overrides Content-Length
        ] {
            var parser = HTTP1ResponseParser()
            let data = ascii("HTTP/1.1 200 OK\r\n\(encodingFields)\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count, "\(encodingFields)")
            #expect(parser.body == ascii("hello"), "\(encodingFields)")
        }
    }

    // MARK: - Answers without a body

    @Test(arguments: pieceSizes)
    func headAnswerEndsAfterTheHeaders(pieceSize: Int) throws {
        for fields in ["Content-Length: 1234", "Transfer-Encoding: chunked", "Content-Type: text/html"] {
            let data = ascii("HTTP/1.1 200 OK\r\n\(fields)\r\n\r\n")
            var parser = HTTP1ResponseParser(isHEAD: true)
            #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count, "\(fields)")
            #expect(parser.isComplete)
            #expect(parser.status == 200)
            #expect(parser.body.isEmpty)
            #expect(parser.keepAlive, "\(fields)")
            #expect(parser.leftover.isEmpty)

            // Without isHEAD, the same head announces a body (or one that runs to the close).
            var notHead = HTTP1ResponseParser()
            #expect(try feed(&notHead, data, pieceSize: pieceSize) == nil, "\(fields)")
        }
        #expect(HTTP1ResponseParser().isComplete == false)

        // Body bytes a server sends anyway are not the body; they are left over.
        let head = ascii("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        var parser = HTTP1ResponseParser(isHEAD: true)
        let completedAt = try feed(&parser, head + ascii("hello"), pieceSize: pieceSize)
        #expect(completedAt == completionPoint(answerEnd: head.count, total: head.count + 5, pieceSize: pieceSize))
        #expect(parser.headers["content-length"] == "5")
        #expect(parser.body.isEmpty)
        #expect(Array(parser.leftover) == ascii("hello"))
    }

    @Test(arguments: [204, 304], pieceSizes)
    func noContentAndNotModifiedHaveNoBody(code: Int, pieceSize: Int) throws {
        for fields in ["Content-Length: 10", "Transfer-Encoding: chunked", "ETag: \"abc\""] {
            let data = ascii("HTTP/1.1 \(code) Whatever\r\n\(fields)\r\n\r\n")
            var parser = HTTP1ResponseParser()
            #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count, "\(fields)")
            #expect(parser.isComplete)
            #expect(parser.status == code)
            #expect(parser.body.isEmpty)
            #expect(parser.keepAlive, "\(fields)")
        }
    }

    // MARK: - Interim answers

    @Test(arguments: pieceSizes)
    func interimContinueIsSkipped(pieceSize: Int) throws {
        let data = ascii("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nhello")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count)
        #expect(parser.status == 200)
        #expect(parser.body == ascii("hello"))
        #expect(parser.headers.fields.map(\.name) == ["Content-Length", "X-Final"])
        #expect(parser.keepAlive)
    }

    @Test(arguments: pieceSizes)
    func severalInterimAnswersAreSkippedWithTheirHeaders(pieceSize: Int) throws {
        let data = ascii(
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                + "HTTP/1.1 100 Continue\r\n\r\n"
                + "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count)
        #expect(parser.status == 201)
        #expect(parser.headers["link"] == nil)
        #expect(parser.body == ascii("ok"))
        #expect(!parser.keepAlive)
    }

    @Test(arguments: pieceSizes)
    func onlyAnInterimAnswerIsNotAnAnswer(pieceSize: Int) throws {
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, ascii("HTTP/1.1 100 Continue\r\n\r\n"), pieceSize: pieceSize) == nil)
        #expect(!parser.isComplete)
        #expect(parser.status != 100)
        #expect(!finishAtEndOfStream(&parser))
    }

    @Test(arguments: pieceSizes)
    func switchingProtocolsEndsTheAnswer(pieceSize: Int) throws {
        let head = ascii("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        let frame: [UInt8] = [0x81, 0x05] + ascii("hello")
        var parser = HTTP1ResponseParser()
        let completedAt = try feed(&parser, head + frame, pieceSize: pieceSize)
        #expect(completedAt == completionPoint(answerEnd: head.count, total: head.count + frame.count, pieceSize: pieceSize))
        #expect(parser.status == 101)
        #expect(parser.body.isEmpty)
        #expect(Array(parser.leftover) == frame)
    }

    // MARK: - Keep-alive

    static let keepAliveCases: [KeepAliveCase] = [
        .init(version: "HTTP/1.1", connectionHeader: nil, keepAlive: true),
        .init(version: "HTTP/1.1", connectionHeader: "keep-alive", keepAlive: true),
        .init(version: "HTTP/1.1", connectionHeader: "Upgrade", keepAlive: true),
        .init(version: "HTTP/1.1", connectionHeader: "close", keepAlive: false),
        .init(version: "HTTP/1.1", connectionHeader: "Close", keepAlive: false),
        .init(version: "HTTP/1.1", connectionHeader: "keep-alive,  close ", keepAlive: false),
        .init(version: "HTTP/1.1", connectionHeader: "closed", keepAlive: true),
        .init(version: "HTTP/1.0", connectionHeader: nil, keepAlive: false),
        .init(version: "HTTP/1.0", connectionHeader: "keep-alive", keepAlive: true),
        .init(version: "HTTP/1.0", connectionHeader: "Keep-Alive", keepAlive: true),
        .init(version: "HTTP/1.0", connectionHeader: "TE, keep-alive", keepAlive: true),
        .init(version: "HTTP/1.0", connectionHeader: "close", keepAlive: false),
    ]

    @Test(arguments: keepAliveCases, pieceSizes)
    func keepAliveRules(testCase: KeepAliveCase, pieceSize: Int) throws {
        let connection = testCase.connectionHeader.map { "Connection: \($0)\r\n" } ?? ""
        let data = ascii("\(testCase.version) 200 OK\r\n\(connection)Content-Length: 2\r\n\r\nhi")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count)
        #expect(parser.keepAlive == testCase.keepAlive)
        #expect(parser.body == ascii("hi"))
    }

    @Test(arguments: pieceSizes)
    func connectionHeaderNameIsCaseInsensitive(pieceSize: Int) throws {
        let data = ascii("HTTP/1.1 200 OK\r\nCONNECTION: CLOSE\r\nContent-Length: 0\r\n\r\n")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count)
        #expect(!parser.keepAlive)
    }

    // MARK: - Leftover

    @Test(arguments: pieceSizes)
    func bytesAfterTheAnswerAreLeftOver(pieceSize: Int) throws {
        let answer = ascii("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
        let extra = ascii("HTTP/1.1 204 No Content\r\n\r\n")
        var parser = HTTP1ResponseParser()
        let completedAt = try feed(&parser, answer + extra, pieceSize: pieceSize)
        #expect(completedAt == completionPoint(answerEnd: answer.count, total: answer.count + extra.count, pieceSize: pieceSize))
        #expect(parser.body == ascii("body"))
        #expect(Array(parser.leftover) == extra)

        // More bytes once complete: still complete, and added to the leftover only.
        try feed(&parser, ascii("MORE"), pieceSize: pieceSize)
        #expect(parser.isComplete)
        #expect(parser.status == 200)
        #expect(parser.body == ascii("body"))
        #expect(Array(parser.leftover) == extra + ascii("MORE"))
        #expect(finishAtEndOfStream(&parser))
    }

    @Test(arguments: pieceSizes)
    func noLeftoverWhenTheAnswerEndsExactly(pieceSize: Int) throws {
        var parser = HTTP1ResponseParser()
        try feed(&parser, ascii("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"), pieceSize: pieceSize)
        #expect(parser.isComplete)
        #expect(parser.leftover.isEmpty)
    }

    // MARK: - End of stream and receivedAnyBytes

    @Test func freshParserHasReceivedNothing() throws {
        var parser = HTTP1ResponseParser()
        #expect(!parser.receivedAnyBytes)
        #expect(!parser.isComplete)
        #expect(parser.leftover.isEmpty)
        #expect(parser.body.isEmpty)
        #expect(!finishAtEndOfStream(&parser))
        #expect(!parser.isComplete)
        #expect(!parser.receivedAnyBytes)

        // An empty read is not a byte.
        #expect(try feedPiece(&parser, []) == false)
        #expect(!parser.receivedAnyBytes)

        #expect(try feedPiece(&parser, ascii("H")[...]) == false)
        #expect(parser.receivedAnyBytes)
        #expect(!finishAtEndOfStream(&parser))
        #expect(!parser.isComplete)
    }

    @Test(arguments: pieceSizes)
    func endOfStreamBeforeTheEndOfTheAnswer(pieceSize: Int) throws {
        for cut in [
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",  // body cut short
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",  // no body at all
            "HTTP/1.1 200 OK\r\nContent-Len",  // head cut short
            "HTTP/1.1 200 OK\r\n\r",  // head of a read-until-close answer cut short
            "HTT",
        ] {
            var parser = HTTP1ResponseParser()
            #expect(try feed(&parser, ascii(cut), pieceSize: pieceSize) == nil, "\(cut.debugDescription)")
            #expect(parser.receivedAnyBytes)
            #expect(!finishAtEndOfStream(&parser), "\(cut.debugDescription)")
            #expect(!parser.isComplete, "\(cut.debugDescription)")
        }
    }

    // MARK: - Malformed answers

    static let malformedCases: [MalformedCase] = {
        let ok = "HTTP/1.1 200 OK\r\n"
        let chunked = ok + "Transfer-Encoding: chunked\r\n\r\n"
        var cases: [MalformedCase] = [
            .init(name: "wrong protocol name", response: "HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "HTTP/2 version", response: "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "non-numeric code", response: "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "word for a code", response: "HTTP/1.1 OK 200\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "two-digit code", response: "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "four-digit code", response: "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "code below 100", response: "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "negative code", response: "HTTP/1.1 -20 Odd\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "signed code", response: "HTTP/1.1 +20 Odd\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "no code", response: "HTTP/1.1\r\nContent-Length: 0\r\n\r\n", reason: "bad status line"),
            .init(name: "empty status line", response: "\r\n\r\n", reason: "bad status line"),
            .init(name: "header line without colon", response: ok + "NoColonHere\r\n\r\n", reason: "header line without a name"),
            .init(name: "empty header name", response: ok + ": value\r\n\r\n", reason: "header line without a name"),
            .init(name: "space in a header name", response: ok + "Content Length: 5\r\n\r\nhello", reason: "space in a header name"),
            .init(name: "space before the colon", response: ok + "Content-Length : 5\r\n\r\nhello", reason: "space in a header name"),
            .init(name: "tab in a header name", response: ok + "X-Tab\tName: v\r\n\r\n", reason: "space in a header name"),
            .init(name: "folded header (space)", response: ok + "X-Long: one\r\n two\r\nContent-Length: 0\r\n\r\n", reason: "obsolete header line folding"),
            .init(name: "folded header (tab)", response: ok + "X-Long: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n", reason: "obsolete header line folding"),
            .init(name: "chunk data longer than its size", response: chunked + "3\r\nhello\r\n0\r\n\r\n", reason: "chunk not followed by CRLF"),
            .init(name: "chunk data followed by junk", response: chunked + "5\r\nhelloX\r\n0\r\n\r\n", reason: "chunk not followed by CRLF"),
            .init(name: "chunk data without CRLF", response: chunked + "5\r\nhello0\r\n\r\n", reason: "chunk not followed by CRLF"),
            .init(name: "chunk data followed by bare LF", response: chunked + "5\r\nhello\n0\r\n\r\n", reason: "chunk not followed by CRLF"),
            .init(name: "16 hex digits of chunk size", response: chunked + "1000000000000000\r\nx\r\n0\r\n\r\n", reason: "chunk size too large"),
        ]
        for length in ["abc", "5, 6", "5,6", "-1", "+5", "", "0x5", "5 5", "5.0", "99999999999999999999999", "５"] {
            cases.append(
                .init(name: "Content-Length \(length.debugDescription)", response: ok + "Content-Length: \(length)\r\n\r\nhello", reason: "bad Content-Length"))
        }
        for size in ["zz", "", "-5", "0x5", ";ext=1", "g"] {
            cases.append(.init(name: "chunk size \(size.debugDescription)", response: chunked + "\(size)\r\nhello\r\n0\r\n\r\n", reason: "bad chunk size"))
        }
        return cases
    }()

    @Test(arguments: malformedCases, pieceSizes)
    func malformedAnswersThrow(testCase: MalformedCase, pieceSize: Int) {
        #expect(throws: ParseFailure(reason: testCase.reason)) {
            var parser = HTTP1ResponseParser()
            try feed(&parser, ascii(testCase.response), pieceSize: pieceSize)
        }
    }

    @Test func failureDescriptionNamesTheReason() {
        #expect(ParseFailure(reason: "bad chunk size").description == "malformed HTTP response: bad chunk size")
    }

    @Test(arguments: pieceSizes)
    func longestChunkSizeAccepted(pieceSize: Int) throws {
        // Fifteen hex digits are accepted: the answer waits for that much data.
        var parser = HTTP1ResponseParser()
        let data = ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFF\r\nsome data")
        #expect(try feed(&parser, data, pieceSize: pieceSize) == nil)
        #expect(parser.body == ascii("some data"))
    }

    @Test(arguments: pieceSizes)
    func chunkSizeLineTooLong(pieceSize: Int) {
        let data = ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;") + Array(repeating: UInt8(ascii: "x"), count: 5000)
        #expect(throws: ParseFailure(reason: "chunk size line too long")) {
            var parser = HTTP1ResponseParser()
            try feed(&parser, data, pieceSize: pieceSize)
        }
    }

    // The head is searched for its end from its start on every read, so feeding a quarter
    // megabyte byte by byte is quadratic; these tests feed at least 4 KiB at a time.

    @Test(arguments: pieceSizes)
    func headerSectionTooLongWithoutItsEnd(pieceSize: Int) {
        let data =
            ascii("HTTP/1.1 200 OK\r\nX-Filler: ")
            + Array(repeating: UInt8(ascii: "a"), count: HTTP1ResponseParser.maximumHeadBytes + 10)
        #expect(throws: ParseFailure(reason: "header section too long")) {
            var parser = HTTP1ResponseParser()
            try feed(&parser, data, pieceSize: max(pieceSize, 4096))
        }
    }

    @Test(arguments: pieceSizes)
    func headerSectionTooLongWithItsEnd(pieceSize: Int) {
        // A whole head longer than the limit, followed by its empty line: rejected however it
        // arrives.
        let data =
            ascii("HTTP/1.1 200 OK\r\nX-Filler: ")
            + Array(repeating: UInt8(ascii: "a"), count: HTTP1ResponseParser.maximumHeadBytes + 8192)
            + ascii("\r\nContent-Length: 0\r\n\r\n")
        #expect(throws: ParseFailure(reason: "header section too long")) {
            var parser = HTTP1ResponseParser()
            try feed(&parser, data, pieceSize: max(pieceSize, 4096))
        }
    }

    @Test(arguments: pieceSizes)
    func headerSectionUnderTheLimitIsAccepted(pieceSize: Int) throws {
        let prefix = "HTTP/1.1 200 OK\r\nX-Filler: "
        let suffix = "\r\nContent-Length: 2\r\n\r\n"
        let fillerCount = HTTP1ResponseParser.maximumHeadBytes - 1024 - prefix.utf8.count - suffix.utf8.count
        let data = ascii(prefix) + Array(repeating: UInt8(ascii: "a"), count: fillerCount) + ascii(suffix) + ascii("ok")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, data, pieceSize: max(pieceSize, 4096)) == data.count)
        #expect(parser.headers["x-filler"]?.utf8.count == fillerCount)
        #expect(parser.body == ascii("ok"))
    }

    @Test(arguments: [1, 1 << 20])
    func theHeadLimitIsExactAndTheSameHoweverTheBytesArrive(pieceSize: Int) throws {
        // The limit counts the head up to (not including) its blank line. Byte by byte this
        // also shows the search for the blank line is linear: quadratic rescanning of a quarter
        // megabyte would not finish within the suite's time limit.
        func answer(headLength: Int) -> [UInt8] {
            let prefix = ascii("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Filler: ")
            return prefix + Array(repeating: UInt8(ascii: "a"), count: headLength - prefix.count) + ascii("\r\n\r\nok")
        }
        var atLimit = HTTP1ResponseParser()
        let fits = answer(headLength: HTTP1ResponseParser.maximumHeadBytes)
        #expect(try feed(&atLimit, fits, pieceSize: pieceSize) == fits.count)
        #expect(atLimit.body == ascii("ok"))
        #expect(throws: ParseFailure(reason: "header section too long")) {
            var overLimit = HTTP1ResponseParser()
            try feed(&overLimit, answer(headLength: HTTP1ResponseParser.maximumHeadBytes + 1), pieceSize: pieceSize)
        }
    }

    @Test(arguments: pieceSizes)
    func trailerLineTooLong(pieceSize: Int) {
        let data =
            ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: ")
            + Array(repeating: UInt8(ascii: "t"), count: HTTP1ResponseParser.maximumHeadBytes + 10)
        #expect(throws: ParseFailure(reason: "trailers too long")) {
            var parser = HTTP1ResponseParser()
            try feed(&parser, data, pieceSize: max(pieceSize, 4096))
        }
    }

    // MARK: - Fields repeated over several lines (RFC 9110 §5.3: same as one comma-separated line)

    @Test(arguments: pieceSizes)
    func conflictingContentLengthLinesAreRejected(pieceSize: Int) {
        // RFC 9112 §6.3: differing Content-Length values make the framing invalid.
        let data = ascii("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        #expect(throws: ParseFailure.self) {
            var parser = HTTP1ResponseParser()
            try feed(&parser, data, pieceSize: pieceSize)
        }
    }

    @Test(arguments: pieceSizes)
    func transferEncodingOverSeveralLinesEndingInChunkedIsChunked(pieceSize: Int) throws {
        let data = ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count)
        #expect(parser.body == ascii("hello"))
    }

    @Test(arguments: pieceSizes)
    func connectionCloseOnASecondLineIsHonoured(pieceSize: Int) throws {
        let data = ascii("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        var parser = HTTP1ResponseParser()
        #expect(try feed(&parser, data, pieceSize: pieceSize) == data.count)
        #expect(!parser.keepAlive)
    }

    @Test(arguments: pieceSizes)
    func http10WithTransferEncodingClosesTheConnection(pieceSize: Int) {
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; the
        // recipient must close the connection after it (or reject the answer).
        let data = ascii("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        var parser = HTTP1ResponseParser()
        do {
            try feed(&parser, data, pieceSize: pieceSize)
        } catch {
            return  // rejecting it is fine
        }
        _ = parser.finishAtEndOfStream()
        #expect(!parser.keepAlive)
    }
}
