import DeliveryResults

/// A message the mock accepted through a send, followed through time as SENS reports it: `READY` for the first half
/// of the mock's delivery delay, `PROCESSING` for the second, then its outcome.
///
/// **The outcome is chosen by the recipient number**, so tests and the demo say what they want by whom they send to:
/// - the last four digits are `9999`: the message never completes (it stays `PROCESSING`, for `track-max-age`);
/// - SMS: the last four digits, when they are an `sms.report` code (`3018`, `2003`, …), are its report code;
///   anything else is delivered (`0`);
/// - AlimTalk and Brand Message: the last four digits, when they are a Kakao message code (`3019`, `3020`, …), are
///   its message code; anything else is delivered (`0000`). A failed Kakao message whose send asked for
///   `useSmsFailover` reports an SMS failover, delivered (`0`) unless the four digits before the last four are
///   themselves an `sms.report` code (`…2003` `3019` fails over and the SMS fails with 2003).
struct SentMessage: Sendable {
    var product: String
    var messageId: String
    var requestId: String
    var to: String
    var useSmsFailover: Bool
    var acceptedAt: ContinuousClock.Instant

    /// How far the message has come.
    enum Stage: Equatable {
        case ready, processing, completed
    }

    func stage(now: ContinuousClock.Instant, delay: Duration) -> Stage {
        let elapsed = now - self.acceptedAt
        if elapsed >= delay && !self.neverCompletes { return .completed }
        return elapsed >= delay / 2 ? .processing : .ready
    }

    var neverCompletes: Bool { self.to.hasSuffix("9999") }

    /// The message object SENS returns for it now, for a lookup of the message itself (`brief` for SMS's list by
    /// `requestId`, which SENS answers without delivery status).
    func json(now: ContinuousClock.Instant, delay: Duration, brief: Bool = false) -> String {
        let stage = self.stage(now: now, delay: delay)
        if self.product == "sms" {
            var fields = [
                #""requestId":"\#(self.requestId)""#, #""messageId":"\#(self.messageId)""#, #""requestTime":"2026-12-01 10:17:00""#,
                #""contentType":"COMM""#, #""type":"SMS""#, #""countryCode":"82""#, #""from":"0212345678""#, #""to":"\#(self.to)""#,
            ]
            if brief { return "{" + fields.joined(separator: ",") + "}" }
            switch stage {
            case .ready: fields.append(#""status":"READY""#)
            case .processing: fields.append(#""status":"PROCESSING""#)
            case .completed:
                let (code, text) = Self.smsOutcome(String(self.to.suffix(4)))
                fields += [
                    #""status":"COMPLETED""#, #""completeTime":"2026-12-01 10:17:03""#, #""telcoCode":"SKT""#,
                    #""statusCode":"\#(code)""#, #""statusName":"\#(code == "0" ? "success" : "fail")""#, #""statusMessage":"\#(text)""#,
                ]
            }
            return "{" + fields.joined(separator: ",") + "}"
        }
        var fields = [
            #""requestId":"\#(self.requestId)""#, #""messageId":"\#(self.messageId)""#, #""requestTime":"2026-12-01T10:17:00.000""#,
            #""plusFriendId":"@sensgate""#, #""countryCode":"82""#, #""to":"\#(self.to)""#, #""requestStatusCode":"A000""#,
            #""requestStatusName":"success""#, #""requestStatusDesc":"Succeeded""#, #""useSmsFailover":\#(self.useSmsFailover)"#,
        ]
        switch stage {
        case .ready:
            break
        case .processing:
            fields += [#""messageStatusCode":"0000""#, #""messageStatusName":"processing""#, #""messageStatusDesc":"Processing""#]
        case .completed:
            let digits = String(self.to.suffix(4))
            let entry = CodeTable.standard.entry(.kakao, digits)
            let code = entry.map { _ in digits } ?? "0000"
            fields += [
                #""completeTime":"2026-12-01T10:17:03""#, #""messageStatusCode":"\#(code)""#,
                #""messageStatusName":"\#(code == "0000" ? "success" : "fail")""#,
                #""messageStatusDesc":"\#(entry?.description ?? "Normal delivery")""#,
            ]
            if code != "0000" && self.useSmsFailover {
                let (smsCode, smsText) = Self.smsOutcome(String(self.to.dropLast(4).suffix(4)))
                fields.append(
                    #""failover":{"smsServiceId":"ncp:sms:kr:500000000001:sens","requestId":"RSLA-\#(self.requestId)","messageId":"fo-\#(self.messageId)","requestStatusCode":"0","requestStatusName":"success","requestStatusDesc":"Succeeded","messageStatus":"COMPLETED","messageStatusCode":"\#(smsCode)","messageStatusName":"\#(smsCode == "0" ? "success" : "fail")","messageStatusDesc":"\#(smsText)"}"#
                )
            }
        }
        if self.product == "alimtalk" { fields.append(#""templateCode":"ORDER_SHIPPED""#) } else { fields.append(#""messageType":"TEXT""#) }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// An SMS report code and its text for four digits: the code when `sms.report` has it, else delivered.
    static func smsOutcome(_ digits: String) -> (code: String, text: String) {
        guard digits != "0000", let entry = CodeTable.standard.entry(.smsReport, digits) else { return ("0", "Succeeded") }
        return (digits, entry.description)
    }
}
