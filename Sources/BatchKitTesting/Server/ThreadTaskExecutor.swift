import BatchKit
import Dispatch
import Foundation
import Synchronization

/// Runs the jobs of tasks that prefer it (`Task(executorPreference:)`) on threads of its own
/// instead of the shared Swift concurrency pool.
///
/// The emulator servers answer each request from a task, while a server thread blocks waiting
/// for the answer. On the shared pool (as many threads as cores) those tasks queue behind
/// whatever else the process is doing: in a parallel test run on two loaded cores, hundreds of
/// tests' work held answers back for over 45 seconds, and clients timed out against a server
/// that was merely waiting for a thread. With threads of its own the server answers in time
/// whatever the pool is doing; the operating system shares the CPU between the threads.
///
/// After ``shutdown()`` jobs still arriving (a cancelled handler winding down) are handed to the
/// global concurrent executor, so no task is ever stranded.
final class ThreadTaskExecutor: TaskExecutor {
    private struct Queue {
        var jobs: [UnownedJob] = []
        var next = 0
        var stopped = false
    }

    /// Jobs waiting for a thread; the semaphore counts them (plus one wake per thread at shutdown).
    private let queue = Mutex(Queue())
    private let ready = DispatchSemaphore(value: 0)
    private let threadCount: Int

    /// Starts `threads` threads named `name`.
    init(name: String, threads: Int = 2) {
        threadCount = max(1, threads)
        for _ in 0..<threadCount {
            let thread = Thread { [self] in run() }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        if queue.withLock({ $0.stopped }) {
            globalConcurrentExecutor.enqueue(job)
            return
        }
        let unowned = UnownedJob(job)
        let accepted = queue.withLock { q -> Bool in
            if q.stopped { return false }
            q.jobs.append(unowned)
            return true
        }
        if accepted {
            ready.signal()
        } else {
            // Shut down between the two looks (rare): run it here rather than strand it.
            unowned.runSynchronously(on: globalConcurrentExecutor.asUnownedTaskExecutor())
        }
    }

    /// Ends the threads once the jobs queued so far have run; later jobs go to the global pool.
    func shutdown() {
        let wake = queue.withLock { q -> Bool in
            if q.stopped { return false }
            q.stopped = true
            return true
        }
        if wake { for _ in 0..<threadCount { ready.signal() } }
    }

    private func run() {
        BrokenPipe.blockOnThisThread()
        while true {
            ready.wait()
            let job = queue.withLock { q -> UnownedJob? in
                guard q.next < q.jobs.count else { return nil }  // a shutdown wake with nothing queued
                let job = q.jobs[q.next]
                q.next += 1
                if q.next > 1024, q.next * 2 > q.jobs.count {
                    q.jobs.removeFirst(q.next)
                    q.next = 0
                }
                return job
            }
            guard let job else {
                if queue.withLock({ $0.stopped && $0.next >= $0.jobs.count }) { return }
                continue
            }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
