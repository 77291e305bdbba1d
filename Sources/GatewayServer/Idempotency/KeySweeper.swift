import Logging
import ServiceLifecycle
import Store

/// Removes expired idempotency keys (`idempotency-ttl`) from the store, in bounded batches, so the table holds about
/// one TTL's keys. An expired key is already free before it is swept (a claim treats it as new); the sweep only
/// reclaims the space.
struct KeySweeper: Service {
    let store: any DeliveryStore
    let metrics: GatewayMetrics
    let logger: Logger
    var every: Duration = .seconds(60)
    /// Keys removed per transaction: a sweep after a long stop does not hold the store's one writer for long.
    var batch = 1_000

    func run() async throws {
        await Pause.repeating(every: self.every) { pause in
            do {
                while try await self.store.sweepKeys(now: StoreTime.now, limit: self.batch) == self.batch, !pause.isStopped {}
            } catch {
                self.metrics.recordStoreError(operation: "sweep_keys")
                self.logger.warning("expired idempotency keys could not be removed", metadata: ["reason": "\(error)"])
            }
        }
    }
}
