@testable import Store
import Testing

/// The gate that fails PostgreSQL operations at once while the database does not answer: pure logic, its own clock.
@Suite("Store: outage gate")
struct OutageGateTests {
    @Test("open until an operation times out; then only a probe a second tries, essential writes always; the first answer opens it again")
    func gate() {
        var gate = OutageGate()
        let t0 = ContinuousClock.now
        #expect(Self.admit(&gate, t0))
        #expect(Self.admit(&gate, t0))
        gate.timedOut(now: t0 + .seconds(10))
        #expect(gate.unreachableSince == t0 + .seconds(10))
        // Within a second of the last try: refused at once.
        #expect(!Self.admit(&gate, t0 + .seconds(10.5)))
        // A second on: one probe tries, and only one; other operations never, essential writes always.
        #expect(!Self.admit(&gate, t0 + .seconds(11), .operation))
        #expect(Self.admit(&gate, t0 + .seconds(11)))
        #expect(!Self.admit(&gate, t0 + .seconds(11.2)))
        #expect(!Self.admit(&gate, t0 + .seconds(30), .operation))
        #expect(Self.admit(&gate, t0 + .seconds(11.2), .essential))
        // That try timed out as well: the outage goes on from its first timeout.
        gate.timedOut(now: t0 + .seconds(21))
        #expect(gate.unreachableSince == t0 + .seconds(10))
        #expect(!Self.admit(&gate, t0 + .seconds(21.5)))
        #expect(Self.admit(&gate, t0 + .seconds(22)))
        // An essential write that times out does not hold the next probe back.
        gate.timedOut(.essential, now: t0 + .seconds(22.9))
        #expect(Self.admit(&gate, t0 + .seconds(23)))
        // It answered: everything goes through again.
        gate.answered()
        #expect(gate.unreachableSince == nil)
        #expect(Self.admit(&gate, t0 + .seconds(22.1), .operation))
        #expect(Self.admit(&gate, t0 + .seconds(22.1), .operation))
    }

    /// `#expect` cannot call a mutating method on its own.
    static func admit(_ gate: inout OutageGate, _ now: ContinuousClock.Instant, _ kind: OutageGate.Kind = .probe) -> Bool {
        gate.admit(kind, now: now)
    }
}
