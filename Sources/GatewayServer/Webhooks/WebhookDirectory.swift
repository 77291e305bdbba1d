/// Which webhook a caller's events go to (PRODUCT.md §6): with a tokens file, the caller's own `webhook`; without one,
/// the `webhook-url` setting. The one place both the tracker (which makes events only for a caller with somewhere
/// to send them) and the webhook sender ask.
struct WebhookDirectory: Sendable {
    let callers: CallerStore
    /// The `webhook-url` / `webhook-secret-file` settings.
    let global: WebhookTarget?

    func target(for caller: String) -> WebhookTarget? {
        guard let tokens = self.callers.tokens else { return self.global }
        return tokens.callers.first { $0.name == caller }?.webhook
    }
}
