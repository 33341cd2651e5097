import BatchKitTesting
import Synchronization
import Testing

@testable import BatchKit

// The state machines of the concurrency primitives, driven synchronously: no task, no clock,
// strings standing in for the continuations they hand back.

/// `#expect` cannot hold a mutating call (it captures its expression in a closure): the machines'
/// events are evaluated here, as arguments, and compared.
private func check<T: Equatable>(_ actual: T, _ expected: T, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual == expected, sourceLocation: sourceLocation)
}

@Suite struct WaiterQueueTests {
    @Test func waitersLeaveInArrivalOrderAndACancelledOneLeavesAtOnce() {
        var q = WaiterQueue<String>()
        let a = q.makeID(), b = q.makeID(), c = q.makeID()
        check(q.enqueue("a", id: a), true)
        check(q.enqueue("b", id: b), true)
        check(q.enqueue("c", id: c), true)
        check(q.cancel(b), "b")
        #expect(q.count == 2)
        check(q.first(), "a")
        check(q.popFirst(), "a")
        check(q.popFirst(), "c")
        check(q.popFirst(), nil)
        #expect(q.isEmpty)
    }

    @Test func aWaitCancelledBeforeItIsEnqueuedIsRefused() {
        var q = WaiterQueue<String>()
        let id = q.makeID()
        check(q.cancel(id), nil)  // the handler ran first: nothing parked yet
        check(q.enqueue("late", id: id), false)
        #expect(q.isEmpty)
        // The mark is consumed: it does not refuse anything else.
        let other = q.makeID()
        check(q.enqueue("other", id: other), true)
        check(q.removeAll(), ["other"])
    }

    @Test func aCancellationAfterTheWaitIsForgotten() {
        var q = WaiterQueue<String>()
        let id = q.makeID()
        check(q.enqueue("w", id: id), true)
        check(q.popFirst(), "w")  // resumed by the owner
        check(q.cancel(id), nil)  // then its task is cancelled: a mark is left
        q.forget(id)
        check(q.takeCancellation(id), false)
    }

    @Test func manyCancellationsKeepOrderAndDoNotAccumulate() {
        var q = WaiterQueue<Int>()
        var ids: [WaiterID] = []
        for i in 0..<1_000 {
            let id = q.makeID()
            ids.append(id)
            check(q.enqueue(i, id: id), true)
        }
        for (i, id) in ids.enumerated() where i % 10 != 0 { check(q.cancel(id), i) }
        #expect(q.count == 100)
        check(q.removeAll(), Array(stride(from: 0, to: 1_000, by: 10)))
    }
}

@Suite struct BoundedChannelStateMachineTests {
    typealias Machine = BoundedChannelStateMachine<Int, String, String>

    @Test func producersParkWhileFullAndTakeFreedSlotsInOrder() {
        var m = Machine(capacity: 1)
        check(m.send(1), .buffered)
        guard case .suspend(let id2) = m.send(2), case .suspend(let id3) = m.send(3) else {
            Issue.record("a full buffer should suspend producers")
            return
        }
        check(m.suspendSend(2, id: id2, sender: "s2"), .parked)
        check(m.suspendSend(3, id: id3, sender: "s3"), .parked)
        #expect(m.waitingSenders == 2)
        check(m.offer(9), .reject)
        check(m.receive(), .element(1, resumeSender: "s2"))
        check(m.receive(), .element(2, resumeSender: "s3"))
        check(m.receive(), .element(3, resumeSender: nil))
        check(m.receive(), .suspend)
    }

    @Test func aParkedConsumerGetsTheNextElementDirectly() {
        var m = Machine(capacity: 2)
        check(m.receive(), .suspend)
        check(m.suspendReceive("r"), .parked)
        check(m.send(7), .resumeReceiver("r"))
        check(m.receive(), .suspend)
        check(m.suspendReceive("r2"), .parked)
        check(m.offer(8), .resumeReceiver("r2"))
    }

    @Test func aProducerWhoseTaskIsCancelledLeavesAndItsElementIsDropped() {
        var m = Machine(capacity: 1)
        check(m.send(1), .buffered)
        guard case .suspend(let id) = m.send(2) else { Issue.record("expected to suspend"); return }
        check(m.suspendSend(2, id: id, sender: "s2"), .parked)
        check(m.cancelSend(id), .resumeSender("s2"))
        #expect(m.waitingSenders == 0)
        check(m.cancelSend(id), .none)  // a second cancellation finds nothing
        check(m.receive(), .element(1, resumeSender: nil))
        check(m.receive(), .suspend)
    }

    @Test func aProducerCancelledBeforeItParksIsResumedWithFalse() {
        var m = Machine(capacity: 1)
        check(m.send(1), .buffered)
        guard case .suspend(let id) = m.send(2) else { Issue.record("expected to suspend"); return }
        check(m.cancelSend(id), .none)
        // Room appears before it parks, but its cancellation came first and wins.
        check(m.receive(), .element(1, resumeSender: nil))
        check(m.suspendSend(2, id: id, sender: "s2"), .resumeSender("s2", false))
        check(m.receive(), .suspend)
    }

    @Test func roomOrAConsumerAppearingBeforeTheProducerParksIsUsed() {
        var m = Machine(capacity: 1)
        check(m.send(1), .buffered)
        guard case .suspend(let id2) = m.send(2) else { Issue.record("expected to suspend"); return }
        check(m.receive(), .element(1, resumeSender: nil))
        check(m.suspendSend(2, id: id2, sender: "s2"), .resumeSender("s2", true))
        check(m.receive(), .element(2, resumeSender: nil))
        check(m.send(3), .buffered)
        guard case .suspend(let id4) = m.send(4) else { Issue.record("expected to suspend"); return }
        check(m.receive(), .element(3, resumeSender: nil))
        check(m.receive(), .suspend)
        check(m.suspendReceive("r"), .parked)
        check(m.suspendSend(4, id: id4, sender: "s4"), .resumeReceiverAndSender("r", "s4"))
    }

    @Test func finishKeepsParkedElementsDeliverableThenEnds() {
        var m = Machine(capacity: 1)
        check(m.send(1), .buffered)
        guard case .suspend(let id) = m.send(2) else { Issue.record("expected to suspend"); return }
        check(m.suspendSend(2, id: id, sender: "s2"), .parked)
        check(m.finish(), .resume(receiver: nil, senders: ["s2"]))
        check(m.send(3), .discard)
        check(m.offer(3), .reject)
        check(m.receive(), .element(1, resumeSender: nil))
        check(m.receive(), .element(2, resumeSender: nil))
        check(m.receive(), .end)
        check(m.finish(), .none)
    }

    @Test func finishReleasesAParkedConsumer() {
        var m = Machine(capacity: 1)
        check(m.receive(), .suspend)
        check(m.suspendReceive("r"), .parked)
        check(m.finish(), .resume(receiver: "r", senders: []))
        check(m.suspendReceive("r2"), .resumeReceiver("r2", nil, resumeSender: nil))
    }

    @Test func cancelDiscardsEverythingAndReleasesEveryone() {
        var m = Machine(capacity: 1)
        check(m.send(1), .buffered)
        guard case .suspend(let id) = m.send(2) else { Issue.record("expected to suspend"); return }
        check(m.suspendSend(2, id: id, sender: "s2"), .parked)
        check(m.cancel(), .resume(receiver: nil, senders: ["s2"]))
        #expect(m.isCancelled)
        check(m.receive(), .end)
        check(m.send(3), .discard)
        check(m.cancelSend(id), .none)
        check(m.cancel(), .none)
        // A producer that was getting ready to wait is told the channel closed.
        check(m.suspendSend(4, id: id, sender: "s4"), .resumeSender("s4", false))
    }

    @Test func cancelAfterFinishDiscardsTheRest() {
        var m = Machine(capacity: 2)
        check(m.send(1), .buffered)
        check(m.finish(), .resume(receiver: nil, senders: []))
        check(m.cancel(), .none)
        check(m.receive(), .end)
    }
}

@Suite struct AdaptiveConcurrencyStateMachineTests {
    typealias Machine = AdaptiveConcurrencyStateMachine<String>

    @Test func slotsUpToTheLimitThenCallersParkAndAreAdmittedInOrder() {
        var m = Machine(maximum: 2)
        check(m.acquire(), .proceed)
        check(m.acquire(), .proceed)
        guard case .suspend(let a) = m.acquire(), case .suspend(let b) = m.acquire() else {
            Issue.record("callers over the limit should suspend")
            return
        }
        check(m.suspendAcquire(id: a, waiter: "a"), .parked)
        check(m.suspendAcquire(id: b, waiter: "b"), .parked)
        check(m.release(), .resume(["a"]))
        #expect(m.active == 2)
        // A slot freed while someone waits is theirs: a newcomer does not overtake.
        check(m.release(), .resume(["b"]))
        guard case .suspend = m.acquire() else { Issue.record("a newcomer must not take a held slot"); return }
    }

    @Test func cancellationParkedOrNotYetParked() {
        var m = Machine(maximum: 1)
        check(m.acquire(), .proceed)
        guard case .suspend(let a) = m.acquire(), case .suspend(let b) = m.acquire() else {
            Issue.record("expected to suspend")
            return
        }
        check(m.suspendAcquire(id: a, waiter: "a"), .parked)
        check(m.cancelAcquire(id: a), .resume("a"))
        check(m.cancelAcquire(id: b), .none)
        check(m.release(), .none)  // nobody parked
        // `b` was cancelled before it parked: it gets no slot even though one is free now.
        check(m.suspendAcquire(id: b, waiter: "b"), .resume("b", false))
        #expect(m.active == 0)
        #expect(m.waiting == 0)
    }

    @Test func aThrottleBurstHalvesOnceThenSuccessGrowsBackAndAdmits() {
        var m = Machine(maximum: 4)
        #expect(m.adaptation == .settled)
        check(m.recordThrottle(), .decreased(to: 2))
        #expect(m.adaptation == .recovering(completions: 0))
        check(m.recordThrottle(), .unchanged)  // same burst
        check(m.recordThrottle(), .unchanged)
        #expect(m.adaptation == .recovering(completions: 2))
        m.recordCompletion()
        #expect(m.adaptation == .settled)  // more completions than the limit: the burst is over
        check(m.recordThrottle(), .decreased(to: 1))
        check(m.acquire(), .proceed)
        guard case .suspend(let w) = m.acquire() else { Issue.record("expected to suspend"); return }
        check(m.suspendAcquire(id: w, waiter: "w"), .parked)
        check(m.recordSuccess(), .resume(["w"]))  // a window of one: the limit grows to 2, the waiter gets it
        #expect(m.current == 2)
        check(m.recordSuccess(), .none)
        #expect(m.current == 2)  // one success of a window of two
        check(m.recordSuccess(), .none)
        #expect(m.current == 3)
        for _ in 0..<2 { check(m.recordSuccess(), .none) }
        #expect(m.current == 3)
        check(m.recordSuccess(), .none)
        #expect(m.current == 4)
        for _ in 0..<10 { check(m.recordSuccess(), .none) }
        #expect(m.current == 4)  // never above the maximum
    }

    @Test func theLimitNeverGoesBelowTheMinimumAndAFixedLimitNeverMoves() {
        var m = Machine(maximum: 8, minimum: 3)
        check(m.recordThrottle(), .decreased(to: 4))
        for _ in 0..<5 { m.recordCompletion() }
        check(m.recordThrottle(), .decreased(to: 3))
        for _ in 0..<4 { m.recordCompletion() }
        check(m.recordThrottle(), .decreased(to: 3))
        var fixed = Machine(maximum: 8, adapts: false)
        check(fixed.recordThrottle(), .unchanged)
        check(fixed.recordSuccess(), .none)
        #expect(fixed.adaptation == .fixed)
        #expect(fixed.current == 8)
    }
}

@Suite struct TimeoutSchedulerStateMachineTests {
    typealias Machine = TimeoutSchedulerStateMachine<Int, String, String>

    @Test func deadlinesExpireInOrderAndTheLoopSleepsUntilTheOldest() {
        var m = Machine()
        let a = m.makeID(), b = m.makeID(), c = m.makeID()
        check(m.enqueue(id: a, deadline: 10, waiter: "a"), .parked(wakeLoop: nil))
        check(m.enqueue(id: b, deadline: 20, waiter: "b"), .parked(wakeLoop: nil))
        check(m.enqueue(id: c, deadline: 30, waiter: "c"), .parked(wakeLoop: nil))
        check(m.tick(now: 0), .sleep(until: 10, expired: []))
        check(m.cancel(id: b), .resume("b"))  // its request answered first
        check(m.tick(now: 25), .sleep(until: 30, expired: ["a"]))
        check(m.tick(now: 30), .idle(expired: ["c"]))
        #expect(m.pending == 0)
    }

    @Test func anIdleLoopIsWokenByTheNextDeadlineAndByStop() {
        var m = Machine()
        check(m.tick(now: 0), .idle(expired: []))
        check(m.suspendLoop("loop"), .parked)
        let a = m.makeID()
        check(m.enqueue(id: a, deadline: 5, waiter: "a"), .parked(wakeLoop: "loop"))
        check(m.tick(now: 1), .sleep(until: 5, expired: []))
        check(m.cancel(id: a), .resume("a"))
        check(m.tick(now: 2), .idle(expired: []))
        check(m.suspendLoop("loop2"), .parked)
        check(m.stop(), .resume("loop2"))
        check(m.tick(now: 3), .stop)
        check(m.suspendLoop("loop3"), .resume("loop3"))
        check(m.stop(), .none)
    }

    @Test func aDeadlineArrivingBeforeTheLoopParksKeepsItAwake() {
        var m = Machine()
        check(m.tick(now: 0), .idle(expired: []))
        let a = m.makeID()
        check(m.enqueue(id: a, deadline: 5, waiter: "a"), .parked(wakeLoop: nil))
        check(m.suspendLoop("loop"), .resume("loop"))
    }

    @Test func aWaiterCancelledBeforeItParksIsResumedAtOnce() {
        var m = Machine()
        let a = m.makeID()
        check(m.cancel(id: a), .none)
        check(m.enqueue(id: a, deadline: 5, waiter: "a"), .resumeCancelled("a"))
        #expect(m.pending == 0)
        check(m.tick(now: 10), .idle(expired: []))
    }
}

@Suite struct SharedInputStateMachineTests {
    typealias Machine = SharedInputStateMachine<String>

    @Test func oneCallerPullsAtATimeAndTheTurnIsHandedOverInOrder() {
        var m = Machine()
        check(m.acquire(), .pull)
        #expect(m.state == .pulling)
        guard case .suspend(let a) = m.acquire(), case .suspend(let b) = m.acquire() else {
            Issue.record("a second caller should wait its turn")
            return
        }
        check(m.suspend(id: a, waiter: "a"), .parked)
        check(m.suspend(id: b, waiter: "b"), .parked)
        check(m.finishPull(exhausted: false), .handOver("a"))
        check(m.finishPull(exhausted: false), .handOver("b"))
        check(m.finishPull(exhausted: false), .none)
        #expect(m.state == .idle)
    }

    @Test func theEndReleasesEveryWaiter() {
        var m = Machine()
        check(m.acquire(), .pull)
        guard case .suspend(let a) = m.acquire(), case .suspend(let b) = m.acquire() else {
            Issue.record("expected to suspend")
            return
        }
        check(m.suspend(id: a, waiter: "a"), .parked)
        check(m.finishPull(exhausted: true), .resumeExhausted(["a"]))
        check(m.suspend(id: b, waiter: "b"), .resume("b", .exhausted))
        check(m.acquire(), .exhausted)
    }

    @Test func aCancelledWaiterLeavesTheLineWhetherParkedOrNot() {
        var m = Machine()
        check(m.acquire(), .pull)
        guard case .suspend(let a) = m.acquire(), case .suspend(let b) = m.acquire() else {
            Issue.record("expected to suspend")
            return
        }
        check(m.suspend(id: a, waiter: "a"), .parked)
        check(m.cancel(id: a), .resume("a"))
        check(m.cancel(id: b), .none)
        check(m.finishPull(exhausted: false), .none)  // nobody is left in line
        #expect(m.state == .idle)
        // `b`'s cancellation came before it parked: it does not pull, though the input is free.
        check(m.suspend(id: b, waiter: "b"), .resume("b", .cancelled))
        #expect(m.state == .idle)
        #expect(m.waiting == 0)
    }
}

// The shells: every wait ends when its task is cancelled. These tests order events with the
// primitives' own counters and continuations; nothing sleeps.

@Suite(.timeLimit(.minutes(5))) struct CancellableWaitTests {
    /// Yields until `condition` holds (the other task has reached the state the test needs).
    private func until(_ condition: () -> Bool) async {
        while !condition() { await Task.yield() }
    }

    @Test func aSendWaitingForRoomReturnsFalseWhenItsTaskIsCancelled() async {
        let channel = BoundedChannel<Int>(capacity: 1)
        #expect(await channel.send(1))
        let blocked = Task { await channel.send(2) }
        await until { channel.waitingSenders == 1 }
        blocked.cancel()
        // Before the fix the cancelled send stayed parked: the receive below moved its element
        // into the buffer and resumed it with `true`.
        let first = await channel.receive()
        channel.finish()
        let second = await channel.receive()
        #expect(await blocked.value == false)
        #expect(first == 1)
        #expect(second == nil)
        #expect(!channel.isCancelled)  // a producer's cancellation is not the consumer's
    }

    @Test func aSendWhoseTaskIsAlreadyCancelledDoesNotWaitForRoom() async {
        let channel = BoundedChannel<Int>(capacity: 1)
        #expect(await channel.send(1))
        let returned = ReturnedFlag()
        let sender = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            defer { returned.set() }
            return await channel.send(2)
        }
        await until { returned.isSet || channel.waitingSenders == 1 }
        // Before the fix it parked: make room so that the test fails instead of hanging.
        if !returned.isSet { _ = await channel.receive() }
        #expect(await sender.value == false)
        #expect(channel.waitingSenders == 0)
        #expect(!channel.isCancelled)
        #expect(await channel.receive() == 1)
        #expect(channel.offer(3))
    }

    @Test func aTurnAtTheInputIsGivenUpWhenTheTaskIsCancelled() async {
        let (requests, feed) = AsyncStream<BatchRequest>.makeStream()
        let input = SharedInput(requests)
        let pulling = Task { await input.next() }
        await until { input.isPulling }  // it holds the turn, waiting on the empty stream
        let waiting = Task { await input.next() }
        await until { input.waiting == 1 }
        waiting.cancel()
        feed.yield(BatchRequest(id: "r1", chat: ChatRequest(model: "m", messages: [.user("one")])))
        feed.yield(BatchRequest(id: "r2", chat: ChatRequest(model: "m", messages: [.user("two")])))
        feed.finish()
        // Before the fix the cancelled caller stayed in line and pulled "r2" after "r1".
        #expect(await pulling.value?.id == "r1")
        #expect(await waiting.value == nil)
        #expect(await input.next()?.id == "r2")
        #expect(await input.next() == nil)
    }

    @Test func aSlotWaitEndsWhenItsTaskIsCancelled() async {
        let gate = AdaptiveConcurrency(maximum: 1)
        #expect(await gate.acquire())
        let waiter = Task { await gate.acquire() }
        await until { gate.waiting == 1 }
        waiter.cancel()
        #expect(await waiter.value == false)
        #expect(gate.active == 1)
        #expect(gate.waiting == 0)
        gate.release()
        #expect(gate.active == 0)
        #expect(await gate.acquire())
    }

    @Test func deadlinesExpireOnTheClockAndCancelledWaitsEndAtOnce() async {
        let clock = ManualClock()
        let scheduler = TimeoutScheduler(timeout: .seconds(30), clock: clock)
        let loop = Task { await scheduler.run() }
        let expires = Task { await scheduler.waitForTimeout() }
        await until { scheduler.pending == 1 }
        let cancelled = Task { await scheduler.waitForTimeout() }
        await until { scheduler.pending == 2 }
        cancelled.cancel()
        #expect(await cancelled.value == false)
        #expect(clock.now.offset == .zero)
        await clock.sleepers(atLeast: 1)
        #expect(clock.nextDeadline?.offset == .seconds(30))
        clock.advance(by: .seconds(30))
        #expect(await expires.value == true)
        scheduler.stop()
        await loop.value
        #expect(scheduler.pending == 0)
    }
}

// #11 item 6: tokens per minute hold for clients that report no usage.

@Suite(.timeLimit(.minutes(5))) struct TokensWithoutUsageTests {
    @Test func anAnswerWithoutUsageKeepsItsEstimateAsSpent() async {
        let clock = ManualClock()
        // No usage in the answer: Usage.zero, as a client that does not report it returns.
        let client = ClosureClient { _ in ModelResponse(text: "ok", finishReason: .stop) }
        // 6,000 tokens a minute with a one-second burst: 100 tokens at once, 100 more a second.
        // Each request is estimated at a few input tokens plus its 90 output tokens.
        let processor = ConcurrentProcessor(
            client: client,
            configuration: .init(maxConcurrency: 1, tokensPerMinute: 6_000, learnsRateLimits: false),
            clock: clock)
        let requests = (0..<3).map { BatchRequest(id: "t\($0)", chat: ChatRequest(model: "m", messages: [.user("hi")], maxTokens: 90)) }
        let done = Atomic<Bool>(false)
        let driver = Task {
            while !done.load(ordering: .acquiring) {
                if clock.sleeperCount > 0 { clock.advanceToNextDeadline() }
                await Task.yield()
            }
        }
        var items = 0
        for await event in processor.processAsync(requests) {
            if case .item(let r) = event, r.isSuccess { items += 1 }
        }
        done.store(true, ordering: .releasing)
        await driver.value
        #expect(items == 3)
        // Before the fix each answer refunded its whole estimate, so all three started at once,
        // never waiting for the bucket.
        #expect(clock.totalSleeps >= 2)
        #expect(clock.now.offset >= .milliseconds(1_500))
    }
}

/// Set once, read from any task.
private final class ReturnedFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

@Suite struct RingBufferTests {
    /// Seeded pushes and pops, with bursts that make the buffer grow while it wraps, checked
    /// against an array after every step.
    @Test(arguments: [1, 2, 3, 7, 64] as [Int])
    func behavesLikeAnArrayQueueThroughWrapsAndGrowth(initialCapacity: Int) {
        var rng = SplitMix64(seed: UInt64(initialCapacity) &* 0x9E37)
        var ring = RingBuffer<String>(capacity: initialCapacity)
        var model: [String] = []
        var next = 0
        for _ in 0..<5_000 {
            if model.isEmpty || rng.next() % 100 < 55 {
                let burst = Int(rng.next() % 4) + 1
                for _ in 0..<burst {
                    ring.append("e\(next)")
                    model.append("e\(next)")
                    next += 1
                }
            } else {
                check(ring.popFirst(), model.removeFirst())
            }
            check(ring.count, model.count)
            check(ring.first, model.first)
            check(ring.isEmpty, model.isEmpty)
        }
        while let e = ring.popFirst() { check(e, model.removeFirst()) }
        check(model.isEmpty, true)
        check(ring.popFirst(), nil)
    }
}

@Suite struct RateLimiterStateTests {
    /// Waits are computed in floating point: equal to the microsecond.
    private func closeTo(_ wait: Duration, seconds: Double, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(abs(wait.seconds - seconds) < 1e-6, "waited \(wait), expected \(seconds) s", sourceLocation: sourceLocation)
    }

    /// A configured limit starts full (the burst), charges each start, and makes the start that
    /// overdraws it wait exactly for the refill of its deficit at the paced rate.
    @Test func aConfiguredBucketChargesAndMakesTheOverdrawingStartWaitForItsDeficit() {
        // 600 RPM, no headroom, a one-second burst: 10 requests held, refilled at 10 a second.
        var s = RateLimiterState(limits: RateLimits(requestsPerMinute: 600), burst: .seconds(1), headroom: 0, learnsFromServer: false)
        check(s.isUnlimited, false)
        for _ in 0..<10 { check(s.reserve(RateLimitCost(), at: .zero), .zero) }
        closeTo(s.reserve(RateLimitCost(), at: .zero), seconds: 0.1)
        // Half a second later five have come back, less the one overdrawn.
        check(s.reserve(RateLimitCost(), at: .milliseconds(500)), .zero)
        s.refund(RateLimitCost())
        check(s.limits, RateLimits(requestsPerMinute: 600))
    }

    @Test func aPauseHoldsEveryStartUntilItEndsAndIsNeverShortened() {
        var s = RateLimiterState(limits: RateLimits(), burst: .seconds(1), headroom: 0.02, learnsFromServer: true)
        check(s.isUnlimited, true)
        s.pause(until: .seconds(3))
        s.pause(until: .seconds(2))
        check(s.isUnlimited, false)
        check(s.pauseRemaining(at: .seconds(1)), .seconds(2))
        check(s.pauseRemaining(at: .seconds(3)), nil)
        check(s.isUnlimited, true)
    }

    /// A limit learnt from the server starts empty; a configured one is never loosened by it.
    @Test func learntLimitsStartEmptyAndConfiguredOnesAreKept() {
        var info = RateLimitInfo()
        info.requests = .init(limit: 120, remaining: 50)
        info.tokens = .init(limit: 60_000, remaining: 100)
        var s = RateLimiterState(limits: RateLimits(requestsPerMinute: 60), burst: .seconds(1), headroom: 0, learnsFromServer: true)
        s.observe(info, at: .zero)
        check(s.limits, RateLimits(requestsPerMinute: 60, tokensPerMinute: 60_000))
        // The learnt token bucket holds nothing yet: 500 tokens wait for 500 / 1,000 a second.
        closeTo(s.reserve(RateLimitCost(requests: 0, inputTokens: 500), at: .zero), seconds: 0.5)
        var fixed = RateLimiterState(limits: RateLimits(), burst: .seconds(1), headroom: 0, learnsFromServer: false)
        fixed.observe(info, at: .zero)
        check(fixed.isUnlimited, true)
    }
}
