import Logging
import SENSClient
import ServiceLifecycle
import Store

#if canImport(Glibc)
import Glibc
#endif

/// Divides one SENS budget among a fleet (PRODUCT.md §8): every second this replica heartbeats into the shared store,
/// learns how many replicas are alive, and takes its equal share of `upstream-rate` and of `track-rate`. With the
/// embedded store the fleet is this one replica, and the share is the whole budget.
///
/// While the store cannot be reached the last share stays in force: a replica that cannot see the others must not
/// take theirs.
struct FleetBudget: Service {
    let store: any DeliveryStore
    /// The buckets shared: the upstream rate limit, and the tracker's budget.
    let buckets: [TokenBucket]
    let metrics: GatewayMetrics
    let logger: Logger
    /// This replica in the store: the host name (the pod's, in Kubernetes), the process, and a random part (a
    /// restarted process with a recycled pid is a new replica).
    let replica = FleetBudget.replicaName()
    var every: Duration = .seconds(1)
    /// A replica not heard from for this long is taken to be gone: three missed heartbeats.
    var liveFor: StoreTime = 3_000

    func run() async throws {
        // What the last heartbeat found.
        var replicas = 1
        var reachable = true
        self.metrics.recordFleetReplicas(replicas)
        await Pause.repeating(every: self.every) { _ in
            let live: Int
            do {
                live = try await self.store.heartbeat(replica: self.replica, liveFor: self.liveFor)
            } catch {
                self.metrics.recordStoreError(operation: "heartbeat")
                // Once per outage, not every second.
                if reachable { self.logger.warning("fleet heartbeat failed; the last budget share stays", metadata: ["reason": "\(error)"]) }
                reachable = false
                return
            }
            if !reachable { self.logger.notice("fleet heartbeat restored", metadata: ["replicas": "\(live)"]) }
            reachable = true
            guard live != replicas else { return }
            self.logger.notice("the fleet's SENS budget is shared anew", metadata: ["replicas": "\(live)", "was": "\(replicas)"])
            replicas = live
            for bucket in self.buckets { bucket.share(1 / Double(live)) }
            self.metrics.recordFleetReplicas(live)
        }
        do {
            try await self.store.leave(replica: self.replica)
        } catch {
            self.logger.warning("could not leave the fleet; the others take up this share when it lapses", metadata: ["reason": "\(error)"])
        }
    }

    private static func replicaName() -> String {
        var host = [CChar](repeating: 0, count: 256)
        let name = gethostname(&host, host.count - 1) == 0 ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "host"
        var generator = SystemRandomNumberGenerator()
        return "\(name)/\(getpid())/\(String(generator.next() as UInt32, radix: 36))"
    }
}
