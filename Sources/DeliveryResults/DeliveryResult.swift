public import JSON

/// A channel sensgate looks delivery results up on.
public enum DeliveryChannel: String, Sendable, CaseIterable {
    case sms
    case brandmessage
    case alimtalk

    /// The SENS path prefix of the channel's API.
    public var apiPrefix: String { "/\(self.rawValue)/v2" }
}

/// Whether SENS has finished with a message.
public enum DeliveryStatus: String, Sendable {
    case pending
    case completed
    /// Still pending when the gateway stopped following it (`track-max-age`): nothing more is known.
    case expired
}

/// The code that decided an attempt, with its class from the code table.
public struct DeliveryCode: Sendable, Equatable {
    public var namespace: CodeNamespace
    public var value: String
    /// The code table's description, `nil` for an unknown code.
    public var description: String?
    /// Whether the code is in the table.
    public var known: Bool
    /// SENS's own name for the outcome (`statusName`, `messageStatusName`, …).
    public var upstreamName: String?
    /// SENS's own message (`statusMessage`, `messageStatusDesc`, …).
    public var upstreamMessage: String?
    /// The class from the table, `unknown` for a code in no table.
    public var codeClass: CodeClass
}

/// An attached file of an MMS.
public struct AttachedFile: Sendable, Equatable {
    public var fileId: String?
    public var name: String?
}

/// What was sent, as far as SENS reports it.
public struct MessageDetails: Sendable, Equatable {
    /// SMS `type` (SMS/LMS/MMS) or Kakao `messageType`.
    public var type: String?
    public var contentType: String?
    /// SMS caller ID, or the Kakao channel (`plusFriendId`).
    public var from: String?
    public var to: String?
    public var countryCode: String?
    public var subject: String?
    public var content: String?
    public var templateCode: String?
    public var telcoCode: String?
    public var files: [AttachedFile]
}

/// One try at delivering a message: the primary channel, or the SMS failover of a Kakao message.
public struct DeliveryAttempt: Sendable, Equatable {
    public enum Role: String, Sendable {
        case primary
        case failover
    }

    public var channel: DeliveryChannel
    public var role: Role
    public var serviceId: String?
    public var messageId: String?
    public var requestId: String?
    public var status: DeliveryStatus
    public var resultClass: CodeClass
    /// The deciding code, `nil` while nothing has been reported.
    public var code: DeliveryCode?
}

/// One message's delivery result in sensgate's unified schema (`sensgate.delivery-result.v1`).
public struct DeliveryResult: Sendable, Equatable {
    public static let schema = "sensgate.delivery-result.v1"

    public var channel: DeliveryChannel
    public var serviceId: String?
    public var messageId: String?
    public var requestId: String?
    /// RFC 3339 with `+09:00`.
    public var requestTime: String?
    public var completeTime: String?
    public var message: MessageDetails
    /// Primary first, then the failover when there was one.
    public var attempts: [DeliveryAttempt]

    /// The attempt that decides the result: the best class by `success > pending > unknown > transient > permanent`,
    /// the earlier attempt on a tie.
    public var decidingAttempt: DeliveryAttempt? {
        var best: DeliveryAttempt? = nil
        for attempt in self.attempts where best.map({ attempt.resultClass > $0.resultClass }) ?? true {
            best = attempt
        }
        return best
    }

    public var status: DeliveryStatus { self.decidingAttempt?.status ?? .pending }
    public var resultClass: CodeClass { self.decidingAttempt?.resultClass ?? .unknown }
    public var code: DeliveryCode? { self.decidingAttempt?.code }
    /// Whether all there is to know is known: completed and not classed pending, or expired (the gateway stopped
    /// following it). A tracked message ends with its final result (PRODUCT.md §6).
    public var isFinal: Bool { (self.status == .completed && self.resultClass != .pending) || self.status == .expired }

    /// The result as reported when the gateway gives up following it: every attempt still pending becomes
    /// `expired`, class `unknown` (the message may yet arrive; nobody will know).
    public func expired() -> DeliveryResult {
        var result = self
        for index in result.attempts.indices where result.attempts[index].status == .pending {
            result.attempts[index].status = .expired
            result.attempts[index].resultClass = .unknown
        }
        return result
    }

    /// The result of a message the gateway gave up on without ever reading it from SENS: `expired`, class `unknown`.
    public static func expired(channel: DeliveryChannel, serviceId: String, messageId: String, requestId: String) -> DeliveryResult {
        DeliveryResult(
            channel: channel, serviceId: serviceId, messageId: messageId, requestId: requestId, requestTime: nil, completeTime: nil,
            message: MessageDetails(
                type: nil, contentType: nil, from: nil, to: nil, countryCode: nil, subject: nil, content: nil, templateCode: nil,
                telcoCode: nil, files: []),
            attempts: [
                DeliveryAttempt(
                    channel: channel, role: .primary, serviceId: serviceId, messageId: messageId, requestId: requestId, status: .expired,
                    resultClass: .unknown, code: nil)
            ])
    }

    /// Retry only what may succeed later.
    public var retryable: Bool { self.resultClass == .transient }
    /// The channel that delivered the message, if one did.
    public var deliveredVia: DeliveryChannel? {
        self.attempts.first { $0.resultClass == .success }?.channel
    }

    /// Writes the result as the unified JSON object, every key present.
    /// - Parameters:
    ///   - json: The writer to append to.
    ///   - raw: SENS's own JSON, added under `"raw"` when given (`?include=raw`).
    public func write(into json: inout JSONWriter, raw: [UInt8]? = nil) {
        json.beginObject()
        json.key("schema")
        json.string(Self.schema)
        json.key("channel")
        json.string(self.channel.rawValue)
        json.key("serviceId")
        json.string(self.serviceId)
        json.key("messageId")
        json.string(self.messageId)
        json.key("requestId")
        json.string(self.requestId)
        json.key("requestTime")
        json.string(self.requestTime)
        json.key("completeTime")
        json.string(self.completeTime)
        let deciding = self.decidingAttempt
        json.key("status")
        json.string((deciding?.status ?? .pending).rawValue)
        let resultClass = deciding?.resultClass ?? .unknown
        json.key("class")
        json.string(resultClass.rawValue)
        json.key("retryable")
        json.bool(resultClass == .transient)
        json.key("deliveredVia")
        json.string(self.deliveredVia?.rawValue)
        json.key("code")
        Self.write(deciding?.code, into: &json)
        json.key("message")
        self.writeMessage(into: &json)
        json.key("attempts")
        json.beginArray()
        for attempt in self.attempts {
            json.beginObject()
            json.key("channel")
            json.string(attempt.channel.rawValue)
            json.key("role")
            json.string(attempt.role.rawValue)
            json.key("serviceId")
            json.string(attempt.serviceId)
            json.key("messageId")
            json.string(attempt.messageId)
            json.key("requestId")
            json.string(attempt.requestId)
            json.key("status")
            json.string(attempt.status.rawValue)
            json.key("class")
            json.string(attempt.resultClass.rawValue)
            json.key("code")
            Self.write(attempt.code, into: &json)
            json.endObject()
        }
        json.endArray()
        if let raw {
            json.key("raw")
            json.raw(raw)
        }
        json.endObject()
    }

    private func writeMessage(into json: inout JSONWriter) {
        let message = self.message
        json.beginObject()
        json.key("type")
        json.string(message.type)
        json.key("contentType")
        json.string(message.contentType)
        json.key("from")
        json.string(message.from)
        json.key("to")
        json.string(message.to)
        json.key("countryCode")
        json.string(message.countryCode)
        json.key("subject")
        json.string(message.subject)
        json.key("content")
        json.string(message.content)
        json.key("templateCode")
        json.string(message.templateCode)
        json.key("telcoCode")
        json.string(message.telcoCode)
        json.key("files")
        json.beginArray()
        for file in message.files {
            json.beginObject()
            json.key("fileId")
            json.string(file.fileId)
            json.key("name")
            json.string(file.name)
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }

    private static func write(_ code: DeliveryCode?, into json: inout JSONWriter) {
        guard let code else {
            json.null()
            return
        }
        json.beginObject()
        json.key("namespace")
        json.string(code.namespace.rawValue)
        json.key("value")
        json.string(code.value)
        json.key("description")
        json.string(code.description)
        json.key("known")
        json.bool(code.known)
        json.key("upstreamName")
        json.string(code.upstreamName)
        json.key("upstreamMessage")
        json.string(code.upstreamMessage)
        json.endObject()
    }
}
