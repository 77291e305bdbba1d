/// One stored delivery result the mock serves, in SENS's own JSON shape.
public struct StoredMessage: Sendable {
    /// `sms`, `brandmessage` or `alimtalk`: the path prefix it is served under.
    public var product: String
    public var messageId: String
    public var requestId: String
    /// The message object exactly as SENS returns it (for SMS, one element of `messages`).
    public var json: String

    public init(product: String, messageId: String, requestId: String, json: String) {
        self.product = product
        self.messageId = messageId
        self.requestId = requestId
        self.json = json
    }
}

/// The results the mock starts with: the two seed documents' examples verbatim, and one of each case the unified
/// schema has to handle (pending, failover delivered / failed / pending / rejected, uncertain, request rejected,
/// codes from every SMS table, an unknown code).
///
/// Message ids say what each one is, so tests and the demo read plainly.
public enum Fixtures {
    /// The SMS seed's example (`000_2f5628a966089cec.txt`): an MMS that failed with report code 3018.
    public static let smsSeedMessageID = "f574d3f0-****-****-****-daa31f50eaf5"
    /// The Brand Message seed's example (`004_7a671ef196cad4df.txt`): delivered, with an SMS failover also sent.
    public static let brandMessageSeedMessageID = "bc87c708-****-****-****-57b56c506309"
    /// Default service IDs the demo configures.
    public static let smsServiceID = "ncp:sms:kr:500000000001:sens"
    public static let brandMessageServiceID = "ncp:kkobizmsg:kr:270000000006:sens"
    public static let alimTalkServiceID = "ncp:kkobizmsg:kr:270000000007:sens"

    public static let all: [StoredMessage] = sms + brandMessage + alimTalk

    static let sms: [StoredMessage] = [
        StoredMessage(
            product: "sms", messageId: smsSeedMessageID, requestId: "RSMA-*************-****-********-ijYyjJqS",
            json: #"""
            {
                "requestId": "RSMA-*************-****-********-ijYyjJqS",
                "messageId": "f574d3f0-****-****-****-daa31f50eaf5",
                "requestTime": "2025-11-25 10:17:00",
                "contentType": "COMM",
                "type": "MMS",
                "subject": "Delivery",
                "content": "Hello, ******. This is for notifying your delivery status.",
                "countryCode": "82",
                "from": "010********",
                "to": "010********",
                "completeTime": "2025-11-25 10:17:00",
                "telcoCode": "ETC",
                "files": [
                    {
                        "fileId": "a136************************74f7",
                        "name": "G0ufjqMy3wBpCucJenTaU.jpg"
                    }
                ],
                "status": "COMPLETED",
                "statusCode": "3018",
                "statusName": "fail",
                "statusMessage": "When using a number subscribed to a caller ID spoofing prevention add-on service through a mobile carrier as the caller ID"
            }
            """#),
        smsMessage(id: "sms-delivered-0001", request: "RSMA-demo-0001", status: "COMPLETED", code: "0", name: "success", text: "Succeeded"),
        smsMessage(id: "sms-processing-0001", request: "RSMA-demo-0001", status: "PROCESSING", code: nil, name: nil, text: nil),
        smsMessage(id: "sms-ready-0001", request: "RSMA-demo-0001", status: "READY", code: nil, name: nil, text: nil),
        smsMessage(id: "sms-poweroff-2003", request: "RSMA-demo-0002", status: "COMPLETED", code: "2003", name: "fail", text: "Device power off"),
        smsMessage(id: "sms-relay-S004", request: "RSMA-demo-0002", status: "COMPLETED", code: "S004", name: "fail", text: "Quota exceeded"),
        smsMessage(id: "sms-emma-E915", request: "RSMA-demo-0002", status: "COMPLETED", code: "E915", name: "fail", text: "Duplicate message"),
        smsMessage(id: "sms-unknown-7777", request: "RSMA-demo-0002", status: "COMPLETED", code: "7777", name: "fail", text: "Something new"),
    ]

    static let brandMessage: [StoredMessage] = [
        StoredMessage(
            product: "brandmessage", messageId: brandMessageSeedMessageID, requestId: "RBBA-*************-****-********-QlvjXtBr",
            json: #"""
            {
            "requestId": "RBBA-*************-****-********-QlvjXtBr",
            "messageId": "bc87c708-****-****-****-57b56c506309",
            "requestTime": "2025-11-28T11:21:06.317",
            "completeTime": "2025-11-28T11:21:06",
            "plusFriendId": "@******",
            "messageType": "TEXT",
            "countryCode": "82",
            "to": "010********",
            "content": "Congratulation card",
            "requestStatusCode": "A000",
            "requestStatusName": "success",
            "requestStatusDesc": "Succeeded",
            "messageStatusCode": "0000",
            "messageStatusName": "success",
            "messageStatusDesc": "Normal delivery",
            "useSmsFailover": true,
            "failover": {
            "smsServiceId": "ncp:sms:kr:27*********6:sens",
            "requestId": "RSLA-*************-****-********-ZzdhBYsk",
            "messageId": "6cc7eab4-****-****-****-c523f8a0e8ce",
            "requestStatusCode": "0",
            "requestStatusName": "success",
            "requestStatusDesc": "Succeeded",
            "messageStatus": "COMPLETED",
            "messageStatusCode": "0",
            "messageStatusName": "success",
            "messageStatusDesc": "Succeeded"
            },
            "isAdult": false,
            "targeting": "I",
            "buttons": [
            {
            "name": "Website",
            "type": "WL",
            "linkPc": "https://******.com/ko/",
            "linkMobile": "https://******.com/ko/"
            },
            {
            "name": "Blog",
            "type": "WL",
            "linkPc": "https://******.com/ko/blog/",
            "linkMobile": "https://*******.com/ko/blog/"
            }
            ],
            "image": {
            "imageId": "c175d6a4-****-****-****-90973f8f0aae",
            "imageLink": "https://mud-kage.kakao.com/dn/h9B2k/***********/**********************/img_l.jpg"
            }
            }
            """#),
        kakaoMessage(product: "brandmessage", id: "bm-failover-delivered", request: "RBBA-demo-0001",
                     message: ("3019", "fail", "Not a talk user"),
                     failover: #"{"smsServiceId":"ncp:sms:kr:500000000001:sens","requestId":"RSLA-demo-0001","messageId":"fo-delivered-0001","requestStatusCode":"0","requestStatusName":"success","requestStatusDesc":"Succeeded","messageStatus":"COMPLETED","messageStatusCode":"0","messageStatusName":"success","messageStatusDesc":"Succeeded"}"#),
        kakaoMessage(product: "brandmessage", id: "bm-failover-failed", request: "RBBA-demo-0001",
                     message: ("3019", "fail", "Not a talk user"),
                     failover: #"{"smsServiceId":"ncp:sms:kr:500000000001:sens","requestId":"RSLA-demo-0002","messageId":"fo-failed-0001","requestStatusCode":"0","requestStatusName":"success","requestStatusDesc":"Succeeded","messageStatus":"COMPLETED","messageStatusCode":"3001","messageStatusName":"fail","messageStatusDesc":"No subscriber"}"#),
        kakaoMessage(product: "brandmessage", id: "bm-failover-pending", request: "RBBA-demo-0001",
                     message: ("3019", "fail", "Not a talk user"),
                     failover: #"{"smsServiceId":"ncp:sms:kr:500000000001:sens","requestId":"RSLA-demo-0003","messageId":"fo-pending-0001","requestStatusCode":"0","requestStatusName":"success","requestStatusDesc":"Succeeded","messageStatus":"PROCESSING"}"#),
        kakaoMessage(product: "brandmessage", id: "bm-failover-rejected", request: "RBBA-demo-0002",
                     message: ("3019", "fail", "Not a talk user"),
                     failover: #"{"smsServiceId":"ncp:sms:kr:500000000001:sens","requestId":"RSLA-demo-0004","messageId":"fo-rejected-0001","requestStatusCode":"E4002","requestStatusName":"fail","requestStatusDesc":"SMS alternative delivery service is not configured."}"#),
        kakaoMessage(product: "brandmessage", id: "bm-pending", request: "RBBA-demo-0002", message: nil, failover: nil),
        kakaoMessage(product: "brandmessage", id: "bm-processing", request: "RBBA-demo-0002", message: ("0000", "processing", "Processing"), failover: nil),
        kakaoMessage(product: "brandmessage", id: "bm-uncertain-3005", request: "RBBA-demo-0002",
                     message: ("3005", "fail", "A message was sent, but the read receipt was not confirmed"), failover: nil),
        kakaoMessage(product: "brandmessage", id: "bm-transient-3006", request: "RBBA-demo-0002",
                     message: ("3006", "fail", "Message delivery failed due to Kakao's internal system error."), failover: nil),
        kakaoMessage(product: "brandmessage", id: "bm-request-rejected", request: "RBBA-demo-0003",
                     requestStatus: ("1025", "fail", "Message-blocked Kakao Talk Channel"), message: nil, failover: nil),
        kakaoMessage(product: "brandmessage", id: "bm-unknown-6543", request: "RBBA-demo-0003",
                     message: ("6543", "fail", "A code in no table"), failover: nil),
    ]

    static let alimTalk: [StoredMessage] = [
        kakaoMessage(product: "alimtalk", id: "at-delivered", request: "RATA-demo-0001", message: ("0000", "success", "Normal delivery"), failover: nil),
        kakaoMessage(product: "alimtalk", id: "at-blocked-3020", request: "RATA-demo-0001", message: ("3020", "fail", "Alim Talk blocked"), failover: nil),
        kakaoMessage(product: "alimtalk", id: "at-failover-delivered", request: "RATA-demo-0002",
                     message: ("3019", "fail", "Not a talk user"),
                     failover: #"{"smsServiceId":"ncp:sms:kr:500000000001:sens","requestId":"RSLA-demo-0005","messageId":"fo-delivered-0002","requestStatusCode":"0","requestStatusName":"success","requestStatusDesc":"Succeeded","messageStatus":"COMPLETED","messageStatusCode":"0","messageStatusName":"success","messageStatusDesc":"Succeeded"}"#),
    ]

    static func smsMessage(id: String, request: String, status: String, code: String?, name: String?, text: String?) -> StoredMessage {
        var fields = [
            #""requestId":"\#(request)""#, #""messageId":"\#(id)""#, #""requestTime":"2025-11-25 10:17:00""#,
            #""contentType":"COMM""#, #""type":"SMS""#, #""subject":"""#, #""content":"Your code is 123456""#,
            #""countryCode":"82""#, #""from":"0212345678""#, #""to":"01012345678""#, #""status":"\#(status)""#,
        ]
        if let code, let name, let text {
            fields += [
                #""completeTime":"2025-11-25 10:17:03""#, #""telcoCode":"SKT""#, #""statusCode":"\#(code)""#,
                #""statusName":"\#(name)""#, #""statusMessage":"\#(text)""#,
            ]
        }
        return StoredMessage(product: "sms", messageId: id, requestId: request, json: "{" + fields.joined(separator: ",") + "}")
    }

    static func kakaoMessage(
        product: String, id: String, request: String,
        requestStatus: (String, String, String) = ("A000", "success", "Succeeded"),
        message: (String, String, String)?, failover: String?
    ) -> StoredMessage {
        var fields = [
            #""requestId":"\#(request)""#, #""messageId":"\#(id)""#, #""requestTime":"2025-11-28T11:21:06.317""#,
            #""plusFriendId":"@sensgate""#, #""countryCode":"82""#, #""to":"01098765432""#, #""content":"Your order has shipped""#,
            #""requestStatusCode":"\#(requestStatus.0)""#, #""requestStatusName":"\#(requestStatus.1)""#,
            #""requestStatusDesc":"\#(requestStatus.2)""#, #""useSmsFailover":\#(failover != nil)"#,
        ]
        fields.append(product == "alimtalk" ? #""templateCode":"ORDER_SHIPPED""# : #""messageType":"TEXT""#)
        if let message {
            fields += [
                #""completeTime":"2025-11-28T11:21:09""#, #""messageStatusCode":"\#(message.0)""#,
                #""messageStatusName":"\#(message.1)""#, #""messageStatusDesc":"\#(message.2)""#,
            ]
        }
        if let failover { fields.append(#""failover":\#(failover)"#) }
        if product == "brandmessage" { fields += [#""isAdult":false"#, #""targeting":"I""#] }
        return StoredMessage(product: product, messageId: id, requestId: request, json: "{" + fields.joined(separator: ",") + "}")
    }
}
