/// What a request does at SENS — channel, service ID, method and the SENS path it reaches — resolved the same way for
/// a passthrough request, a `/v1` lookup and each item of a batch, so that one policy (``Caller/permits(_:)``)
/// decides them all (PRODUCT.md §4.5).
struct Operation: Sendable, Equatable {
    /// `sms`, `brandmessage`, `alimtalk` or `friendtalk`.
    var channel: String
    /// The service ID the path names, or `nil` when it names none.
    var serviceId: String?
    var method: String
    /// The SENS request-target the operation reaches (for a lookup, the one it is fetched with).
    var target: String

    /// A passthrough request: `/{channel}/v2/services/{serviceId}/…`.
    init(passthrough target: String, method: String) {
        // "/sms/v2/services/ncp:sms:kr:1:x/messages?…" → ["sms", "v2", "services", "ncp:sms:kr:1:x", …]
        let path = target.utf8.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(target).utf8[...]
        let segments = path.split(separator: UInt8(ascii: "/"), maxSplits: 4, omittingEmptySubsequences: true)
        self.channel = segments.first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        self.serviceId =
            segments.count >= 4 && segments[2].elementsEqual("services".utf8) ? String(decoding: segments[3], as: UTF8.self) : nil
        self.method = method
        self.target = target
    }

    init(channel: String, serviceId: String, method: String, target: String) {
        self.channel = channel
        self.serviceId = serviceId
        self.method = method
        self.target = target
    }
}

extension Caller {
    /// The caller policy: whether this caller may do `operation` — its channel among the caller's `channels`, its
    /// service ID among its `service-ids`, its SENS path under one of its `prefixes` (each where the caller is
    /// limited by it). An operation that names no service ID is refused to a caller limited to service IDs.
    func permits(_ operation: Operation) -> Bool {
        if let channels = self.channels, !channels.contains(operation.channel) { return false }
        if let serviceIds = self.serviceIds {
            guard let serviceId = operation.serviceId, serviceIds.contains(serviceId) else { return false }
        }
        if let prefixes = self.prefixes, !prefixes.contains(where: { operation.target.hasBytePrefix($0) }) { return false }
        return true
    }

    /// Throws `401 unauthorized` unless ``permits(_:)``.
    func authorize(_ operation: Operation) throws(GatewayError) {
        guard self.permits(operation) else {
            throw GatewayError(.unauthorized, "caller \(self.name) may not use \(operation.channel) service \(operation.serviceId ?? "(none)") here")
        }
    }
}
