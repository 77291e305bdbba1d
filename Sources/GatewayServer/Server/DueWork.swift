import Logging
import ServiceLifecycle
import Store
import Synchronization

/// The loop the tracker and the webhook sender share: claim what is due from the store, work it a few at a time,
/// sleep a little when nothing is due, until graceful shutdown. Shutdown ends only the sleep: work in hand finishes
/// and is recorded (a cancelled poll or delivery would be recorded as a failure); what was claimed and not worked is
/// taken again when its lease lapses.
enum DueWork {
    /// - Parameters:
    ///   - what: Names the work in logs (`due tracked requests`, `due webhook events`).
    ///   - claim: Claims the next batch (at most as many items as are worked at once, so none waits out its lease).
    ///   - work: Works one claimed item.
    static func run<Item: Sendable>(
        what: String, concurrency: Int, idleWait: Duration, metrics: GatewayMetrics, logger: Logger,
        claim: @escaping @Sendable () async throws(StoreError) -> [Item], work: @escaping @Sendable (Item) async -> Void
    ) async {
        let pause = Pause()
        await withGracefulShutdownHandler {
            while !pause.isStopped && !Task.isCancelled {
                let due: [Item]
                do {
                    due = try await claim()
                } catch {
                    metrics.recordStoreError(operation: "claim")
                    logger.warning("could not claim \(what)", metadata: ["reason": "\(error)"])
                    await pause.sleep(.seconds(1))
                    continue
                }
                if due.isEmpty {
                    await pause.sleep(idleWait)
                    continue
                }
                await withTaskGroup(of: Void.self) { group in
                    for item in due { group.addTask { await work(item) } }
                }
            }
        } onGracefulShutdown: {
            pause.stop()
        }
    }
}

/// A sleep that graceful shutdown ends early.
final class Pause: Sendable {
    /// Runs `work`, then waits `interval`, over and over until graceful shutdown (which ends only the wait: work under
    /// way finishes). `work` runs in the caller's task, one call at a time, so it may keep its state in the caller's
    /// locals.
    static func repeating(every interval: Duration, _ work: (Pause) async -> Void) async {
        let pause = Pause()
        await withGracefulShutdownHandler {
            while !pause.isStopped && !Task.isCancelled {
                await work(pause)
                await pause.sleep(interval)
            }
        } onGracefulShutdown: {
            pause.stop()
        }
    }

    private let state = Mutex<(stopped: Bool, sleeper: Task<Void, Never>?)>((false, nil))

    var isStopped: Bool { self.state.withLock { $0.stopped } }

    func stop() {
        let sleeper = self.state.withLock { state -> Task<Void, Never>? in
            state.stopped = true
            return state.sleeper
        }
        sleeper?.cancel()
    }

    func sleep(_ duration: Duration) async {
        let sleeper = Task<Void, Never> { try? await Task.sleep(for: duration) }
        let stopped = self.state.withLock { state -> Bool in
            if !state.stopped { state.sleeper = sleeper }
            return state.stopped
        }
        if stopped { sleeper.cancel() }
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        self.state.withLock { $0.sleeper = nil }
    }
}
