public import JSON

/// Why an upstream body could not be normalized: it is not the JSON shape SENS documents.
public struct NormalizationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { self.reason }
}

/// Turns SENS's result bodies into ``DeliveryResult``s.
///
/// Three shapes come in: the SMS result (`statusCode`/`messages[]`, each message with `status` and a reception
/// `statusCode`), and the Brand Message and AlimTalk results (one flat object per message with
/// `requestStatusCode`/`messageStatusCode` and an optional SMS `failover`), each also as a list under `messages`
/// for a lookup by request id. A body that is not that shape is refused as a whole, never half-filled.
public struct Normalizer: Sendable {
    /// The code table codes are classified by.
    public let codes: CodeTable

    /// The request status code with which SENS accepted a Kakao message.
    static let kakaoAccepted = "A000"
    /// The failover request status code for "alternative delivery requested".
    static let failoverAccepted = "0"

    public init(codes: CodeTable = .standard) {
        self.codes = codes
    }

    /// Normalizes a result body from SENS.
    /// - Parameters:
    ///   - channel: The channel the body came from.
    ///   - serviceId: The service ID the lookup used (SENS does not repeat it in the body).
    ///   - body: The body bytes.
    /// - Returns: One result per message, in SENS's order.
    /// - Throws: ``NormalizationError`` when the body is not JSON or not the shape SENS documents.
    public func normalize(channel: DeliveryChannel, serviceId: String?, body: some Collection<UInt8>) throws(NormalizationError) -> [DeliveryResult] {
        let value: JSONValue
        do {
            value = try JSONValue.parse(body)
        } catch {
            throw NormalizationError("the body is not JSON (\(error))")
        }
        return try self.normalize(channel: channel, serviceId: serviceId, json: value)
    }

    /// Normalizes an already parsed result body.
    public func normalize(channel: DeliveryChannel, serviceId: String?, json: JSONValue) throws(NormalizationError) -> [DeliveryResult] {
        let top = try Fields(json, "the body")
        if channel == .sms || top.has("messages") {
            let requestId = try top.string("requestId")
            let items = try top.array("messages")
            guard let items else { throw NormalizationError("the body has no messages list") }
            var results: [DeliveryResult] = []
            results.reserveCapacity(items.count)
            for (index, item) in items.enumerated() {
                let fields = try Fields(item, "messages[\(index)]")
                results.append(
                    channel == .sms
                        ? try self.sms(fields, serviceId: serviceId, requestId: requestId)
                        : try self.kakao(fields, channel: channel, serviceId: serviceId, requestId: requestId))
            }
            return results
        }
        return [try self.kakao(top, channel: channel, serviceId: serviceId, requestId: nil)]
    }

    // MARK: SMS

    func sms(_ fields: Fields, serviceId: String?, requestId fallbackRequestId: String?) throws(NormalizationError) -> DeliveryResult {
        guard let messageId = try fields.string("messageId") else { throw NormalizationError("an SMS message has no messageId") }
        let status = try fields.string("status")
        var code: DeliveryCode? = nil
        if let value = try fields.string("statusCode") {
            code = self.code(value, in: CodeNamespace.sms, name: try fields.string("statusName"), message: try fields.string("statusMessage"))
        }
        // READY and PROCESSING are pending whatever else is there; COMPLETED without a reception code is too.
        let finished = status != "READY" && status != "PROCESSING" && code != nil
        let requestId = try fields.string("requestId") ?? fallbackRequestId
        let attempt = Self.attempt(channel: .sms, role: .primary, serviceId: serviceId, messageId: messageId, requestId: requestId,
                                   finished: finished, code: code)
        var files: [AttachedFile] = []
        if let list = try fields.array("files") {
            for (index, file) in list.enumerated() {
                let entry = try Fields(file, "files[\(index)]")
                files.append(AttachedFile(fileId: try entry.string("fileId"), name: try entry.string("name")))
            }
        }
        return DeliveryResult(
            channel: .sms, serviceId: serviceId, messageId: messageId, requestId: requestId,
            requestTime: try fields.time("requestTime"), completeTime: try fields.time("completeTime"),
            message: MessageDetails(
                type: try fields.string("type"), contentType: try fields.string("contentType"), from: try fields.string("from"),
                to: try fields.string("to"), countryCode: try fields.string("countryCode"), subject: try fields.string("subject"),
                content: try fields.string("content"), templateCode: nil, telcoCode: try fields.string("telcoCode"), files: files),
            attempts: [attempt])
    }

    // MARK: Brand Message and AlimTalk

    func kakao(_ fields: Fields, channel: DeliveryChannel, serviceId: String?, requestId fallbackRequestId: String?) throws(NormalizationError)
        -> DeliveryResult
    {
        guard let messageId = try fields.string("messageId") else { throw NormalizationError("a \(channel.rawValue) message has no messageId") }
        guard let requestStatus = try fields.string("requestStatusCode") else {
            throw NormalizationError("a \(channel.rawValue) message has no requestStatusCode")
        }
        let requestId = try fields.string("requestId") ?? fallbackRequestId
        let primary: DeliveryAttempt
        if requestStatus != Self.kakaoAccepted {
            // The request itself was refused: its code decides the attempt.
            let code = self.code(requestStatus, in: [.kakao], name: try fields.string("requestStatusName"),
                                 message: try fields.string("requestStatusDesc"))
            primary = Self.attempt(channel: channel, role: .primary, serviceId: serviceId, messageId: messageId, requestId: requestId,
                                   finished: true, code: code)
        } else {
            let messageStatus = try fields.string("messageStatusCode")
            let name = try fields.string("messageStatusName")
            let processing = name?.lowercased() == "processing"
            var code: DeliveryCode? = nil
            if !processing, let messageStatus {
                code = self.code(messageStatus, in: [.kakao], name: name, message: try fields.string("messageStatusDesc"))
            }
            primary = Self.attempt(channel: channel, role: .primary, serviceId: serviceId, messageId: messageId, requestId: requestId,
                                   finished: code != nil, code: code)
        }
        var attempts = [primary]
        if let failover = try fields.object("failover") {
            attempts.append(try self.failover(failover))
        }
        return DeliveryResult(
            channel: channel, serviceId: serviceId, messageId: messageId, requestId: requestId,
            requestTime: try fields.time("requestTime"), completeTime: try fields.time("completeTime"),
            message: MessageDetails(
                type: try fields.string("messageType"), contentType: nil, from: try fields.string("plusFriendId"),
                to: try fields.string("to"), countryCode: try fields.string("countryCode"), subject: nil,
                content: try fields.string("content"), templateCode: try fields.string("templateCode"), telcoCode: nil, files: []),
            attempts: attempts)
    }

    /// The SMS a Kakao message fell back to: its request status decides unless it is `0`, then its message status.
    func failover(_ fields: Fields) throws(NormalizationError) -> DeliveryAttempt {
        let serviceId = try fields.string("smsServiceId")
        let messageId = try fields.string("messageId")
        let requestId = try fields.string("requestId")
        if let requestStatus = try fields.string("requestStatusCode"), requestStatus != Self.failoverAccepted {
            let code = self.code(requestStatus, in: [.failover], name: try fields.string("requestStatusName"),
                                 message: try fields.string("requestStatusDesc"))
            return Self.attempt(channel: .sms, role: .failover, serviceId: serviceId, messageId: messageId, requestId: requestId,
                                finished: true, code: code)
        }
        let status = try fields.string("messageStatus")
        var code: DeliveryCode? = nil
        if let value = try fields.string("messageStatusCode") {
            code = self.code(value, in: CodeNamespace.sms, name: try fields.string("messageStatusName"), message: try fields.string("messageStatusDesc"))
        }
        let finished = status != "READY" && status != "PROCESSING" && code != nil
        return Self.attempt(channel: .sms, role: .failover, serviceId: serviceId, messageId: messageId, requestId: requestId,
                            finished: finished, code: code)
    }

    // MARK: Shared

    /// Looks a code up in `namespaces` in order; a code in none of them is `unknown`, reported under the first.
    func code(_ value: String, in namespaces: [CodeNamespace], name: String?, message: String?) -> DeliveryCode {
        if let entry = self.codes.entry(in: namespaces, value) {
            return DeliveryCode(namespace: entry.namespace, value: value, description: entry.description, known: true,
                                upstreamName: name, upstreamMessage: message, codeClass: entry.codeClass)
        }
        return DeliveryCode(namespace: namespaces[0], value: value, description: nil, known: false, upstreamName: name,
                            upstreamMessage: message, codeClass: .unknown)
    }

    static func attempt(
        channel: DeliveryChannel, role: DeliveryAttempt.Role, serviceId: String?, messageId: String?, requestId: String?, finished: Bool,
        code: DeliveryCode?
    ) -> DeliveryAttempt {
        let resultClass = finished ? (code?.codeClass ?? .unknown) : .pending
        // A code classed pending (e.g. Kakao 4000, no result yet) leaves the attempt pending too.
        let status: DeliveryStatus = finished && resultClass != .pending ? .completed : .pending
        return DeliveryAttempt(channel: channel, role: role, serviceId: serviceId, messageId: messageId, requestId: requestId,
                               status: status, resultClass: resultClass, code: code)
    }
}

/// Typed access to one JSON object's members; a member of the wrong type is a ``NormalizationError``.
struct Fields {
    let members: [(key: String, value: JSONValue)]
    let path: String

    init(_ value: JSONValue, _ path: String) throws(NormalizationError) {
        guard case .object(let members) = value else { throw NormalizationError("\(path) is not an object") }
        self.members = members
        self.path = path
    }

    func value(_ key: String) -> JSONValue? {
        for member in self.members where member.key == key { return member.value }
        return nil
    }

    func has(_ key: String) -> Bool { self.value(key) != nil }

    /// A string member; a number is taken as its text (codes sometimes come as numbers); absent or null is `nil`.
    func string(_ key: String) throws(NormalizationError) -> String? {
        switch self.value(key) {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case .number(let text)?: return text
        default: throw NormalizationError("\(self.path).\(key) is not a string")
        }
    }

    func array(_ key: String) throws(NormalizationError) -> [JSONValue]? {
        switch self.value(key) {
        case nil, .null?: return nil
        case .array(let elements)?: return elements
        default: throw NormalizationError("\(self.path).\(key) is not a list")
        }
    }

    func object(_ key: String) throws(NormalizationError) -> Fields? {
        switch self.value(key) {
        case nil, .null?: return nil
        case let value?: return try Fields(value, "\(self.path).\(key)")
        }
    }

    /// A Korea-time member as RFC 3339 `+09:00`.
    func time(_ key: String) throws(NormalizationError) -> String? {
        guard let text = try self.string(key) else { return nil }
        if text.isEmpty { return nil }
        guard let converted = KoreanTime.rfc3339(text) else { throw NormalizationError("\(self.path).\(key) is not a date and time") }
        return converted
    }
}
