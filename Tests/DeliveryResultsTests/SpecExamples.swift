import Foundation
import SENSMock

/// Expected unified results, written by hand from PRODUCT.md §4.2 and the seed documents — not from sensgate's output.
enum SpecExamples {
    /// PRODUCT.md §4.2's example, complete (its `attempts[0].code` elides the fields that repeat `code`).
    static let smsSeed = #"""
        {
          "schema": "sensgate.delivery-result.v1",
          "channel": "sms",
          "serviceId": "ncp:sms:kr:50*********1:sens",
          "messageId": "f574d3f0-****-****-****-daa31f50eaf5",
          "requestId": "RSMA-*************-****-********-ijYyjJqS",
          "requestTime": "2025-11-25T10:17:00+09:00",
          "completeTime": "2025-11-25T10:17:00+09:00",
          "status": "completed",
          "class": "permanent",
          "retryable": false,
          "deliveredVia": null,
          "code": {
            "namespace": "sms.report",
            "value": "3018",
            "description": "Mobile phone subscriber number enrolled in the caller ID spoofing prevention service",
            "known": true,
            "upstreamName": "fail",
            "upstreamMessage": "When using a number subscribed to a caller ID spoofing prevention add-on service through a mobile carrier as the caller ID"
          },
          "message": {
            "type": "MMS", "contentType": "COMM", "from": "010********", "to": "010********",
            "countryCode": "82", "subject": "Delivery", "content": "Hello, ******. This is for notifying your delivery status.",
            "templateCode": null, "telcoCode": "ETC",
            "files": [{"fileId": "a136************************74f7", "name": "G0ufjqMy3wBpCucJenTaU.jpg"}]
          },
          "attempts": [
            {"channel": "sms", "role": "primary", "serviceId": "ncp:sms:kr:50*********1:sens",
             "messageId": "f574d3f0-****-****-****-daa31f50eaf5", "requestId": "RSMA-*************-****-********-ijYyjJqS",
             "status": "completed", "class": "permanent",
             "code": {
               "namespace": "sms.report", "value": "3018",
               "description": "Mobile phone subscriber number enrolled in the caller ID spoofing prevention service",
               "known": true, "upstreamName": "fail",
               "upstreamMessage": "When using a number subscribed to a caller ID spoofing prevention add-on service through a mobile carrier as the caller ID"
             }}
          ]
        }
        """#

    /// The Brand Message seed: delivered by Kakao (`0000`); the failover SMS it also reports succeeded too. The
    /// primary wins the tie, so `deliveredVia` is `brandmessage`. Kakao results have no content type, subject,
    /// telco or files: those are null / empty.
    static let brandMessageSeed = #"""
        {
          "schema": "sensgate.delivery-result.v1",
          "channel": "brandmessage",
          "serviceId": "ncp:kkobizmsg:kr:27*********6:sens",
          "messageId": "bc87c708-****-****-****-57b56c506309",
          "requestId": "RBBA-*************-****-********-QlvjXtBr",
          "requestTime": "2025-11-28T11:21:06.317+09:00",
          "completeTime": "2025-11-28T11:21:06+09:00",
          "status": "completed",
          "class": "success",
          "retryable": false,
          "deliveredVia": "brandmessage",
          "code": {"namespace": "kakao", "value": "0000", "description": "Normal delivery", "known": true,
                   "upstreamName": "success", "upstreamMessage": "Normal delivery"},
          "message": {
            "type": "TEXT", "contentType": null, "from": "@******", "to": "010********", "countryCode": "82",
            "subject": null, "content": "Congratulation card", "templateCode": null, "telcoCode": null, "files": []
          },
          "attempts": [
            {"channel": "brandmessage", "role": "primary", "serviceId": "ncp:kkobizmsg:kr:27*********6:sens",
             "messageId": "bc87c708-****-****-****-57b56c506309", "requestId": "RBBA-*************-****-********-QlvjXtBr",
             "status": "completed", "class": "success",
             "code": {"namespace": "kakao", "value": "0000", "description": "Normal delivery", "known": true,
                      "upstreamName": "success", "upstreamMessage": "Normal delivery"}},
            {"channel": "sms", "role": "failover", "serviceId": "ncp:sms:kr:27*********6:sens",
             "messageId": "6cc7eab4-****-****-****-c523f8a0e8ce", "requestId": "RSLA-*************-****-********-ZzdhBYsk",
             "status": "completed", "class": "success",
             "code": {"namespace": "sms.report", "value": "0", "description": "Succeeded", "known": true,
                      "upstreamName": "success", "upstreamMessage": "Succeeded"}}
          ]
        }
        """#

    /// SENS's body for a stored fixture: SMS results come wrapped in `messages`, Kakao results flat.
    static func body(_ messageId: String) -> [UInt8] {
        guard let message = Fixtures.all.first(where: { $0.messageId == messageId }) else { return [] }
        if message.product == "sms" {
            return Array(#"{"statusCode":"200","statusName":"success","messages":["#.utf8) + Array(message.json.utf8) + Array("]}".utf8)
        }
        return Array(message.json.utf8)
    }

    /// Parses JSON with Foundation (independent of sensgate's parser) for comparison.
    static func foundationJSON(_ bytes: [UInt8]) throws -> NSObject {
        try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as! NSObject
    }
}
