import BatchKit
import BatchKitTesting
import Testing

@Suite(.timeLimit(.minutes(5)))
struct ManualClockTests {
    @Test func sleepersWakeInDeadlineOrderOnlyWhenTimeIsAdvanced() async throws {
        let clock = ManualClock()
        let order = OrderLog()
        let a = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(5)), tolerance: nil); order.add("a") }
        let b = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(2)), tolerance: nil); order.add("b") }
        await clock.sleepers(atLeast: 2)
        #expect(clock.nextDeadline?.offset == .seconds(2))
        clock.advance(by: .seconds(1))
        #expect(clock.sleeperCount == 2)
        clock.advance(by: .seconds(1))
        try await b.value
        #expect(order.entries == ["b"])
        #expect(clock.advanceToNextDeadline())
        try await a.value
        #expect(order.entries == ["b", "a"])
        #expect(clock.now.offset == .seconds(5))
        #expect(!clock.advanceToNextDeadline())
    }

    @Test func pastDeadlinesReturnAtOnceAndCancellationThrows() async {
        let clock = ManualClock()
        clock.advance(by: .seconds(10))
        await #expect(throws: Never.self) { try await clock.sleep(until: .init(offset: .seconds(3)), tolerance: nil) }
        let t = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(60)), tolerance: nil) }
        await clock.sleepers(atLeast: 1)
        t.cancel()
        await #expect(throws: CancellationError.self) { try await t.value }
        #expect(clock.sleeperCount == 0)
    }
}

/// The drivers park while nothing sleeps; parking must end on cancellation and on `stop()`, or a
/// test whose run ends without a sleeper would hang until its time limit.
@Suite(.timeLimit(.minutes(5)))
struct ClockDriverParkingTests {
    @Test func waitingForSleepersEndsWhenTheTaskIsCancelled() async {
        let clock = ManualClock()
        let waiting = Task { await clock.sleepers(atLeast: 1) }
        waiting.cancel()
        await waiting.value  // before: waited for a sleeper that never comes
        #expect(clock.sleeperCount == 0)
        // Cancelled before it starts waiting: returns at once too.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await clock.sleepers(atLeast: 1)
            return Task.isCancelled
        }
        #expect(await early.value)
    }

    @Test func aParkedDriverWakesForASleeperAndStopsWhenTold() async throws {
        let clock = ManualClock()
        let driver = ClockDriver(clock)
        let running = Task { await driver.run() }
        // Nothing sleeps yet: the driver parks. A sleeper arriving later is moved to its deadline.
        try await clock.sleep(until: .init(offset: .seconds(30)))
        #expect(clock.now.offset == .seconds(30))
        // Nothing sleeps again: stop() must end the parked run.
        driver.stop()
        await running.value
    }

    @Test func driveMovesTimeForEachSleeperAndEndsWhenCancelled() async throws {
        let clock = ManualClock()
        let driver = clock.drive()
        for second in 1...5 {
            try await clock.sleep(until: .init(offset: .seconds(second * 10)))
            #expect(clock.now.offset == .seconds(second * 10))
        }
        driver.cancel()
        await driver.value
    }
}

@Suite(.timeLimit(.minutes(5)))
struct BoundedChannelTests {
    @Test func sendersWaitWhileFullAndEverythingArrivesInOrder() async {
        let channel = BoundedChannel<Int>(capacity: 2)
        let producer = Task {
            for i in 0..<100 { await channel.send(i) }
            channel.finish()
        }
        var received: [Int] = []
        while let v = await channel.receive() { received.append(v) }
        await producer.value
        #expect(received == Array(0..<100))
    }

    @Test func offerDropsWhenFullAndCancelReleasesSenders() async {
        let channel = BoundedChannel<Int>(capacity: 1)
        #expect(channel.offer(1))
        #expect(!channel.offer(2))
        let blocked = Task { await channel.send(3) }
        channel.cancel()
        #expect(await blocked.value == false)
        #expect(await channel.receive() == nil)
        #expect(!(await channel.send(4)))
    }
}

/// A thread-safe list of labels.
final class OrderLog: Sendable {
    private let storage = Mutex<[String]>([])
    var entries: [String] { storage.withLock { $0 } }
    func add(_ s: String) { storage.withLock { $0.append(s) } }
}

import Synchronization
