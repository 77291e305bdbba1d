import Logging
import ServiceLifecycle
import Store

/// Keeps the store's gauges current (`sensgate_tracked_requests{state}`, `sensgate_webhook_backlog`,
/// `sensgate_webhook_failed_events`): counted in the store every few seconds, not on each scrape (a scrape must
/// answer from the event loop, and a fleet's replicas would each count the same shared rows anyway).
struct StoreGauges: Service {
    let store: any DeliveryStore
    let metrics: GatewayMetrics
    let logger: Logger
    var every: Duration = .seconds(5)

    func run() async throws {
        await Pause.repeating(every: self.every) { _ in
            do {
                self.metrics.recordStore(try await self.store.counts())
            } catch {
                self.metrics.recordStoreError(operation: "read")
                self.logger.warning("the store could not be counted", metadata: ["reason": "\(error)"])
            }
        }
    }
}
