import Logging
import ServiceLifecycle
import Store

/// The loop the tracker and the webhook sender share: claim what is due from the store, work it a few at a time,
/// sleep a little when nothing is due, until graceful shutdown (the work in hand finishes; what was claimed and not
/// worked is taken again when its lease lapses).
enum DueWork {
    /// - Parameters:
    ///   - what: Names the work in logs (`due requests`, `due events`).
    ///   - claim: Claims the next batch.
    ///   - work: Works one claimed item.
    static func run<Item: Sendable>(
        what: String, concurrency: Int, idleWait: Duration, metrics: GatewayMetrics, logger: Logger,
        claim: @escaping @Sendable () async throws(StoreError) -> [Item], work: @escaping @Sendable (Item) async -> Void
    ) async {
        // Stopping is the sleep's cancellation: not an error of the service.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let due: [Item]
                do {
                    due = try await claim()
                } catch {
                    metrics.recordStoreError(operation: "claim")
                    logger.warning("could not claim \(what)", metadata: ["reason": "\(error)"])
                    try await Task.sleep(for: .seconds(1))
                    continue
                }
                if due.isEmpty {
                    try await Task.sleep(for: idleWait)
                    continue
                }
                await withTaskGroup(of: Void.self) { group in
                    for (index, item) in due.enumerated() {
                        if index >= concurrency { await group.next() }
                        group.addTask { await work(item) }
                    }
                }
            }
        }
    }
}
