import Synchronization

/// Wakes `?wait=` readers of a tracked request when this process's tracker closes it (PRODUCT.md §6). A reader also
/// looks at the store again every second: another process (a fleet's replica, a restarted one) may close it too.
/// On graceful shutdown every wait ends at once (``stopWaiting()``): readers are answered with what is known, so the
/// server drains in moments, not in the longest wait.
final class Completions: Sendable {
    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private let waiting = Mutex<(next: Int, byRequest: [String: [Waiter]], stopped: Bool)>((0, [:], false))

    /// Whether waits end at once (the server is shutting down).
    var isStopped: Bool { self.waiting.withLock { $0.stopped } }

    /// Ends every wait, now and to come.
    func stopWaiting() {
        let waiters = self.waiting.withLock { state -> [Waiter] in
            state.stopped = true
            defer { state.byRequest.removeAll() }
            return state.byRequest.values.flatMap { $0 }
        }
        for waiter in waiters { waiter.continuation.resume() }
    }

    /// Returns when `requestId` is signalled or after `timeout`, whichever is first.
    func wait(for requestId: String, timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = self.waiting.withLock { state -> Int? in
                guard !state.stopped else { return nil }
                state.next += 1
                state.byRequest[requestId, default: []].append(Waiter(id: state.next, continuation: continuation))
                return state.next
            }
            guard let id else { return continuation.resume() }
            // The timeout resumes the waiter unless a signal did first (then it finds nothing to resume).
            Task {
                try? await Task.sleep(for: timeout)
                self.resume(requestId, only: id)
            }
        }
    }

    /// Wakes every reader waiting on `requestId`.
    func signal(_ requestId: String) {
        let waiters = self.waiting.withLock { $0.byRequest.removeValue(forKey: requestId) } ?? []
        for waiter in waiters { waiter.continuation.resume() }
    }

    private func resume(_ requestId: String, only id: Int) {
        let waiter = self.waiting.withLock { state -> Waiter? in
            guard var list = state.byRequest[requestId], let index = list.firstIndex(where: { $0.id == id }) else { return nil }
            let waiter = list.remove(at: index)
            state.byRequest[requestId] = list.isEmpty ? nil : list
            return waiter
        }
        waiter?.continuation.resume()
    }
}
