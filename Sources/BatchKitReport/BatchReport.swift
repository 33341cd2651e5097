public import BatchKit
public import Foundation

/// What a run did, folded from its output lines in one pass and bounded memory: counts by
/// outcome, route, attempts, error code and model; tokens and cost (and what the same tokens cost
/// in the other mode); completions per time bucket; a latency sketch; one span per native job.
/// `batchkit report` and `batchkit run --report` draw it (``text()``, ``html()``).
///
/// ```swift
/// var report = BatchReport(prices: .defaults)
/// try await report.add(contentsOf: URL(filePath: "out.jsonl"))
/// print(report.text())
/// try report.html().write(to: URL(filePath: "report.html"), atomically: true, encoding: .utf8)
/// ```
///
/// Memory does not grow with the number of lines: time buckets coarsen (their width doubles)
/// to stay at most ``maxTimeBuckets``; latency goes into a ``LatencySketch``; attempts, error
/// codes, models and jobs are exact counts, each capped (``maxKeys``; the rest is counted as
/// `(other)`). Every line counts: a file with superseded lines (a rerun with `--retry-failed`
/// before its compaction) counts each.
///
/// Lines written before the `batchkit` member recorded times (`started_at`/`ended_at`), job ids
/// or costs, and files downloaded from a provider (no `batchkit` member), are read for what they
/// hold; ``missing`` says what could not be drawn and why.
public struct BatchReport: Sendable {
    /// The most time buckets kept; the bucket width doubles to stay within it.
    public static let maxTimeBuckets = 120
    /// The smallest bucket width, in milliseconds.
    public static let minBucketMilliseconds: Int64 = 125
    /// The most distinct error codes, models, attempt counts and jobs kept apart.
    public static let maxKeys = 1000

    /// Successes and failures that ended within one time bucket.
    public struct TimeBucket: Sendable, Hashable {
        public var succeeded = 0
        public var failed = 0
        /// 429 answers met by the requests that ended in the bucket.
        public var rateLimited = 0
        /// Rate-limit pauses that began in the bucket (from the run's events, when known).
        public var pauses = 0

        /// Adds `other`'s counts to these.
        mutating func add(_ other: TimeBucket) {
            succeeded += other.succeeded
            failed += other.failed
            rateLimited += other.rateLimited
            pauses += other.pauses
        }
    }

    /// The count and first message of one error code.
    public struct ErrorCount: Sendable, Hashable {
        public var code: String
        public var count: Int
        /// The first message seen for the code (at most 300 characters).
        public var example: String
    }

    /// Tokens and cost of one model through one route.
    public struct ModelRoute: Sendable, Hashable {
        public var model: String
        /// `realtime`, `batch` or `none`.
        public var route: String
        public var requests = 0
        public var usage = Usage.zero
        /// Cost as spent, over the lines that could be priced.
        public var cost = 0.0
        /// What the same tokens would have cost in the other mode (batch for real time, and the
        /// reverse), over the lines whose model has a price.
        public var otherModeCost = 0.0
        /// Lines with tokens that could not be priced.
        public var unpriced = 0
    }

    /// One native batch job, as its items place it.
    public struct JobSpan: Sendable, Hashable {
        public var id: String
        /// The job's creation (its items' earliest start), when known.
        public var submittedAt: Date?
        /// When BatchKit saw it end (its items' latest end), when known.
        public var endedAt: Date?
        public var succeeded = 0
        public var failed = 0
        /// The job's status when the run knew it (`run --report`), else inferred from its items.
        public var status: String?
        /// Failures by code, to infer a status.
        var failureCodes: [String: Int] = [:]

        /// The status to show: the recorded one, else `completed` when any item succeeded, else
        /// the most frequent failure (`expired`, `cancelled`…).
        public var displayStatus: String {
            if let status { return status }
            if succeeded > 0 || failureCodes.isEmpty { return "completed" }
            return failureCodes.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }!.key
        }
    }

    /// The prices used for lines that carry no `cost`, and for the other-mode cost.
    public let prices: PriceTable
    /// The files read, in order.
    public private(set) var sources: [String] = []
    /// Lines counted.
    public private(set) var lines = 0
    public private(set) var succeeded = 0
    public private(set) var failed = 0
    /// Lines that could not be read as output lines (not JSON, no `custom_id`), with the first
    /// few locations (`file:line`).
    public private(set) var unreadable = 0
    public private(set) var unreadableLocations: [String] = []
    /// Results by route (`realtime`, `batch`, `none`).
    public var routes: [String: Int] {
        Dictionary(uniqueKeysWithValues: zip(routeNames, routeCounts))
    }
    /// Requests by number of attempts (an attempt count over 99 is counted as 99).
    public private(set) var attempts: [Int: Int] = [:]
    /// Latency of the requests sent in real time, in milliseconds.
    public private(set) var latency = LatencySketch()
    /// Total 429 answers met.
    public private(set) var rateLimitedAnswers = 0
    /// Rate-limit pauses recorded from the run's events.
    public private(set) var pauseCount = 0
    private var errorCounts: [String: ErrorCount] = [:]
    /// Tokens and cost per model and route, in the order first seen, and where each is.
    private var modelRouteList: [ModelRoute] = []
    private var modelRouteIndex: [ModelRouteKey: Int] = [:]
    /// The last line's model and route, their entry and the model's price (most lines repeat
    /// the line before: this spares them the lookups).
    private var lastModelRoute: (model: String, route: String, index: Int, price: PriceTable.Price?)?
    /// Results by route: names and counts in the order first seen.
    private var routeNames: [String] = []
    private var routeCounts: [Int] = []
    private var jobSpans: [String: JobSpan] = [:]
    /// The price of each model seen (a table lookup may scan every key for a prefix).
    private var priceCache: [String: PriceTable.Price?] = [:]
    /// Strings the scanner made, by their bytes (a model name is made once, not once a line).
    private var interned = StringInterning()
    /// Items of jobs beyond ``maxKeys``.
    public private(set) var jobsLeftOut = 0

    // Time buckets: index = floor(ms since epoch / width).
    private var bucketWidth: Int64 = BatchReport.minBucketMilliseconds
    private var bucketsByIndex: [Int64: TimeBucket] = [:]
    private var firstIndex = Int64.max
    private var lastIndex = Int64.min
    /// The earliest start and latest end seen (ms since epoch).
    private var earliest = Int64.max
    private var latest = Int64.min

    // What older lines lacked.
    private var withoutMember = 0
    private var withoutTimes = 0
    private var batchWithoutJob = 0
    private var withoutModel = 0

    /// An empty report; `prices` price lines without a recorded `cost`.
    public init(prices: PriceTable = .defaults) {
        self.prices = prices
    }

    // MARK: Reading

    /// Reads every line of an output file (one pass, in blocks of 4 MiB).
    ///
    /// Each line is read by ``OutputLineScanner`` (only the members the report counts, straight
    /// from the bytes); a line it cannot read for certain goes through the JSON parser and
    /// ``add(line:location:)``, with the same result.
    ///
    /// - Parameter name: how the file is named in the report and in errors (its path by default).
    /// - Throws: when the file cannot be opened or read. Lines that are not output lines are
    ///   counted in ``unreadable``, not thrown.
    public mutating func add(contentsOf url: URL, name: String? = nil) async throws {
        let display = name ?? url.path
        sources.append(display)
        try JSONLReader.forEachLineInBlocks(of: url) { bytes, lineNumber in
            self.add(scanning: bytes, location: "\(display):\(lineNumber)")
        }
    }

    /// The reference reading of a file: every line through the JSON parser and
    /// ``add(line:location:)``, as ``add(contentsOf:name:)`` read before it had the scanner.
    /// Tests and the `report` benchmark compare the two.
    package mutating func add(parsingEveryLineOf url: URL, name: String? = nil) async throws {
        let display = name ?? url.path
        sources.append(display)
        try await JSONLReader.forEachLine(in: url) { bytes, lineNumber in
            bytes.withUnsafeBufferPointer { self.addParsing($0, location: "\(display):\(lineNumber)") }
        }
    }

    /// Counts one output line given as JSON text.
    ///
    /// - Parameter location: where the line is (`file:line`), named when it cannot be read.
    public mutating func add(lineBytes bytes: ArraySlice<UInt8>, location: @autoclosure () -> String) {
        bytes.withUnsafeBufferPointer { add(scanning: $0, location: location()) }
    }

    /// The fast path: the scanner's reading of the line, else the parser's.
    mutating func add(scanning bytes: UnsafeBufferPointer<UInt8>, location: @autoclosure () -> String) {
        if let scanned = OutputLineScanner.scan(bytes), scanned.customID.kind == .string || scanned.customID.kind == .escapedString {
            add(LineFacts(scanned, in: bytes, interning: &interned))
            return
        }
        addParsing(bytes, location: location())
    }

    /// The reference path: the whole line through the JSON parser.
    mutating func addParsing(_ bytes: UnsafeBufferPointer<UInt8>, location: @autoclosure () -> String) {
        guard let json = try? JSONValue(parsing: bytes) else {
            noteUnreadable(location())
            return
        }
        add(line: json, location: location())
    }

    /// Counts one output line (see ``BatchResult/outputLine()``).
    ///
    /// - Parameter location: where the line is (`file:line`), named when it cannot be read.
    public mutating func add(line: JSONValue, location: @autoclosure () -> String) {
        guard case .object(let o) = line, o["custom_id"]?.stringValue != nil else {
            noteUnreadable(location())
            return
        }
        add(LineFacts(o))
    }

    /// Counts one line from what it records.
    private mutating func add(_ line: LineFacts) {
        lines += 1
        if !line.hasMeta { withoutMember += 1 }
        let success = line.success
        let route = line.metaRoute ?? (line.responseIsNull && !line.hasMeta ? "none" : "batch")
        countRoute(route)

        if success { succeeded += 1 } else { failed += 1 }
        if !success { noteError(code: line.errorCode, message: line.errorMessage) }

        if line.hasMeta {
            let a = line.attempts ?? (success ? 1 : 0)
            let key = min(max(a, 0), 99)
            if attempts[key] != nil || attempts.count < Self.maxKeys { attempts[key, default: 0] += 1 }
            if route == "realtime", a > 0, let ms = line.latencyMs { latency.add(ms) }
        }
        let limited = line.rateLimited ?? 0
        rateLimitedAnswers += limited

        // Time.
        let started = Self.epochMilliseconds(line.startedAt)
        let ended = Self.epochMilliseconds(line.endedAt)
        if let ended {
            var bucket = TimeBucket()
            if success { bucket.succeeded = 1 } else { bucket.failed = 1 }
            bucket.rateLimited = limited
            addToBucket(at: ended, bucket)
            latest = max(latest, ended)
            earliest = min(earliest, started ?? ended)
        } else {
            withoutTimes += 1
        }

        // Model, tokens, cost.
        let model = line.model
        var usage: Usage
        if let stored = line.usage {
            usage = stored
        } else if success {
            usage = route == "batch" ? line.bodyUsage.asBatch : line.bodyUsage
        } else {
            usage = .zero
        }
        if model == nil, success { withoutModel += 1 }
        if success || usage != .zero {
            noteModel(model ?? "(unknown)", route: route, usage: usage, recordedCost: line.cost)
        }

        // Jobs.
        if let job = line.jobID {
            noteJob(job, started: started, ended: ended, success: success, failureCode: success ? nil : line.jobFailureCode)
        } else if route == "batch", line.hasMeta {
            batchWithoutJob += 1
        }
    }

    private mutating func noteUnreadable(_ location: String) {
        unreadable += 1
        if unreadableLocations.count < 5 { unreadableLocations.append(location) }
    }

    private mutating func noteError(code: String, message: String) {
        let key = errorCounts[code] != nil || errorCounts.count < Self.maxKeys ? code : "(other)"
        if errorCounts[key] == nil {
            errorCounts[key] = ErrorCount(code: key, count: 0, example: String(message.prefix(300)))
        }
        errorCounts[key]!.count += 1
    }

    private mutating func countRoute(_ route: String) {
        // A handful of routes: a linear search compares small strings by their bits.
        for k in routeNames.indices where routeNames[k] == route {
            routeCounts[k] += 1
            return
        }
        routeNames.append(route)
        routeCounts.append(1)
    }

    private struct ModelRouteKey: Hashable, Sendable {
        var model: String
        var route: String
    }

    private mutating func noteModel(_ model: String, route: String, usage: Usage, recordedCost: Double?) {
        let index: Int
        let price: PriceTable.Price?
        if let last = lastModelRoute, last.model == model, last.route == route {
            index = last.index
            price = last.price
        } else {
            var key = ModelRouteKey(model: model, route: route)
            if modelRouteIndex[key] == nil, modelRouteIndex.count >= Self.maxKeys { key.model = "(other)" }
            if let i = modelRouteIndex[key] {
                index = i
            } else {
                index = modelRouteList.count
                modelRouteList.append(ModelRoute(model: key.model, route: route))
                modelRouteIndex[key] = index
            }
            if let cached = priceCache[model] {
                price = cached
            } else {
                price = prices.price(for: model)
                if priceCache.count < Self.maxKeys { priceCache[model] = price }
            }
            lastModelRoute = (model, route, index, price)
        }
        modelRouteList[index].requests += 1
        modelRouteList[index].usage += usage
        if let c = recordedCost ?? price?.cost(of: usage) {
            modelRouteList[index].cost += c
        } else if usage != .zero {
            modelRouteList[index].unpriced += 1
        }
        if let price {
            var plain = usage
            plain.batchInputTokens = 0
            plain.batchOutputTokens = 0
            modelRouteList[index].otherModeCost += route == "batch" ? price.cost(of: plain) : price.cost(of: plain.asBatch)
        }
    }

    private mutating func noteJob(_ id: String, started: Int64?, ended: Int64?, success: Bool, failureCode: String?) {
        guard jobSpans[id] != nil || jobSpans.count < Self.maxKeys else {
            jobsLeftOut += 1
            return
        }
        var span = jobSpans[id] ?? JobSpan(id: id)
        if let started {
            let d = Date(timeIntervalSince1970: Double(started) / 1000)
            span.submittedAt = min(span.submittedAt ?? d, d)
        }
        if let ended {
            let d = Date(timeIntervalSince1970: Double(ended) / 1000)
            span.endedAt = max(span.endedAt ?? d, d)
        }
        if success {
            span.succeeded += 1
        } else {
            span.failed += 1
            if let failureCode { span.failureCodes[failureCode, default: 0] += 1 }
        }
        jobSpans[id] = span
    }

    private mutating func addToBucket(at ms: Int64, _ add: TimeBucket) {
        var index = Self.floorDiv(ms, bucketWidth)
        firstIndex = min(firstIndex, index)
        lastIndex = max(lastIndex, index)
        while lastIndex - firstIndex + 1 > Int64(Self.maxTimeBuckets) {
            coarsen()
            index = Self.floorDiv(ms, bucketWidth)
        }
        bucketsByIndex[index, default: TimeBucket()].add(add)
    }

    /// Doubles the bucket width, merging pairs of buckets (exact: indexes are aligned to the epoch).
    private mutating func coarsen() {
        bucketWidth *= 2
        var merged: [Int64: TimeBucket] = [:]
        for (i, b) in bucketsByIndex {
            merged[Self.floorDiv(i, 2), default: TimeBucket()].add(b)
        }
        bucketsByIndex = merged
        firstIndex = Self.floorDiv(firstIndex, 2)
        lastIndex = Self.floorDiv(lastIndex, 2)
    }

    /// A recorded time in whole milliseconds; `nil` beyond ±10^15 ms (31,000 years: a damaged
    /// line, which would overflow the bucket arithmetic), counted as a line without times.
    static func epochMilliseconds(_ ms: Double?) -> Int64? {
        guard let ms, abs(ms) < 1e15 else { return nil }
        return Int64(ms)
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    // MARK: What the run knew (run --report)

    /// Records a rate-limit pause the run reported (a `.retrying` event after a 429): marked in
    /// the bucket where it began.
    public mutating func addRateLimitPause(at date: Date) {
        pauseCount += 1
        var b = TimeBucket()
        b.pauses = 1
        addToBucket(at: Int64((date.timeIntervalSince1970 * 1000).rounded(.down)), b)
    }

    /// Records a native job's final state as the run knew it; its bar shows this status.
    public mutating func addJob(_ job: BatchJob) {
        guard jobSpans[job.id] != nil || jobSpans.count < Self.maxKeys else { return }
        var span = jobSpans[job.id] ?? JobSpan(id: job.id)
        span.status = job.status.rawValue
        if let created = job.createdAt { span.submittedAt = min(span.submittedAt ?? created, created) }
        jobSpans[job.id] = span
    }

    // MARK: Results

    /// The width of a time bucket, in milliseconds.
    public var bucketMilliseconds: Int64 { bucketWidth }

    /// The time buckets from the first to the last one with a completion or pause, empty ones
    /// included, each with its start; empty when no line carried `ended_at`.
    public var timeBuckets: [(start: Date, bucket: TimeBucket)] {
        guard firstIndex <= lastIndex else { return [] }
        return (firstIndex...lastIndex).map { i in
            (Date(timeIntervalSince1970: Double(i * bucketWidth) / 1000), bucketsByIndex[i] ?? TimeBucket())
        }
    }

    /// The run's span: the earliest start to the latest end recorded, when lines carried times.
    public var span: (start: Date, end: Date)? {
        guard earliest <= latest else { return nil }
        return (Date(timeIntervalSince1970: Double(earliest) / 1000), Date(timeIntervalSince1970: Double(latest) / 1000))
    }

    /// Errors by code, most frequent first.
    public var errors: [ErrorCount] {
        errorCounts.values.sorted { $0.count != $1.count ? $0.count > $1.count : $0.code < $1.code }
    }

    /// Tokens and cost per model and route, by model then route.
    public var models: [ModelRoute] {
        modelRouteList.sorted { ($0.model, $0.route) < ($1.model, $1.route) }
    }

    /// Native jobs, by submission time then id.
    public var jobs: [JobSpan] {
        jobSpans.values.sorted {
            let a = $0.submittedAt ?? .distantFuture
            let b = $1.submittedAt ?? .distantFuture
            return a != b ? a < b : $0.id < $1.id
        }
    }

    /// Cost as spent, over the priced lines.
    public var cost: Double { modelRouteList.reduce(0) { $0 + $1.cost } }
    /// Token totals.
    public var usage: Usage { modelRouteList.reduce(.zero) { $0 + $1.usage } }
    /// What the run would have cost all real-time and all batch, over the models with a price.
    public var allRealtimeCost: Double {
        modelRouteList.reduce(0) { $0 + ($1.route == "batch" ? $1.otherModeCost : $1.cost) }
    }
    /// See ``allRealtimeCost``.
    public var allBatchCost: Double {
        modelRouteList.reduce(0) { $0 + ($1.route == "batch" ? $1.cost : $1.otherModeCost) }
    }
    /// Lines with tokens whose model has no price.
    public var unpricedLines: Int { modelRouteList.reduce(0) { $0 + $1.unpriced } }

    /// What the lines did not record, so what the report cannot show: one sentence each.
    public var missing: [String] {
        var notes: [String] = []
        if withoutMember > 0 {
            notes.append(
                "\(withoutMember) line(s) have no \"batchkit\" member (a file downloaded from a provider?): no attempts, latency, times or job ids for them; route taken as batch")
        }
        if withoutTimes > 0 {
            notes.append(
                "\(withoutTimes) line(s) carry no ended_at (written before BatchKit recorded times): they are left out of the completions chart")
        }
        if batchWithoutJob > 0 {
            notes.append("\(batchWithoutJob) batch line(s) carry no job_id: they are left out of the jobs timeline")
        }
        if withoutModel > 0 {
            notes.append("\(withoutModel) success line(s) name no model: their tokens are under (unknown), unpriced")
        }
        if unpricedLines > 0 {
            notes.append("\(unpricedLines) line(s) with tokens have no recorded cost and no price for their model: not in the cost totals")
        }
        if jobsLeftOut > 0 { notes.append("\(jobsLeftOut) item(s) of jobs beyond the first \(Self.maxKeys) are not in the timeline") }
        if unreadable > 0 {
            notes.append(
                "\(unreadable) line(s) are not output lines and were skipped (\(unreadableLocations.joined(separator: ", ")))")
        }
        return notes
    }
}
