/// One token per claim (of due work, of an idempotency key): a write under it proves the claim was not taken over
/// meanwhile — by this process or, on a shared store, by another replica.
enum ClaimToken {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() as UInt64, radix: 36) + String(generator.next() as UInt64, radix: 36)
    }
}
