import Testing

extension Tag {
    /// A test whose assertions are about time (a deadline, a timeout, a breaker's cooldown): it runs alone.
    @Tag static var timing: Self
}

/// Runs the tests tagged `timing` with no other gateway of the test run beside them. The gateway under test runs in
/// the test process; on a 2-core machine two hundred tests at once stretch every sub-second deadline it keeps (a
/// refused connect read as a timeout, a retry budget overrun), and such a test fails for the load, not for the code.
/// Tests that only wait for conditions run side by side as before. Entered by ``TestGateway/run`` and by the tests
/// that drive a `sensgate serve` of their own hard.
enum LoadGate {
    @TaskLocal private static var inside = false

    /// Runs `body` alone when the current test is tagged `timing`, else beside the others (but never beside one that
    /// runs alone). Nested calls run in the outer one's scope.
    static func scope<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        guard !Self.inside else { return try await body() }
        let alone = Test.current?.tags.contains(.timing) ?? false
        await Gate.shared.enter(alone: alone)
        do {
            let value = try await Self.$inside.withValue(true) { try await body() }
            await Gate.shared.leave(alone: alone)
            return value
        } catch {
            await Gate.shared.leave(alone: alone)
            throw error
        }
    }

    /// A readers–writer gate, first come first served: a test waiting to run alone holds back those that arrive after
    /// it, so it is not starved.
    private actor Gate {
        static let shared = Gate()
        private var running = 0
        private var aloneRunning = false
        private var waiting: [(alone: Bool, continuation: CheckedContinuation<Void, Never>)] = []

        func enter(alone: Bool) async {
            if self.waiting.isEmpty && self.admits(alone: alone) {
                self.admit(alone: alone)
                return
            }
            await withCheckedContinuation { self.waiting.append((alone, $0)) }
        }

        func leave(alone: Bool) {
            self.running -= 1
            if alone { self.aloneRunning = false }
            while let next = self.waiting.first, self.admits(alone: next.alone) {
                self.waiting.removeFirst()
                self.admit(alone: next.alone)
                next.continuation.resume()
            }
        }

        private func admits(alone: Bool) -> Bool {
            alone ? self.running == 0 : !self.aloneRunning
        }

        private func admit(alone: Bool) {
            self.running += 1
            if alone { self.aloneRunning = true }
        }
    }
}
