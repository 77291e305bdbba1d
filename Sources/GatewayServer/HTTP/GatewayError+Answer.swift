import NIOCore

extension GatewayError {
    /// The contract's error envelope as an answer, noted in the request's record for its access-log line.
    func answer(record: RequestRecord) -> Answer {
        record.errorCode = self.code.rawValue
        record.resultClass = self.errorClass.rawValue
        if record.upstreamStatus == nil { record.upstreamStatus = self.upstreamStatus }
        return Answer(
            status: self.status, contentType: "application/json", retryAfterSeconds: self.retryAfterSeconds,
            body: ByteBuffer(bytes: self.envelope(requestID: record.requestID)))
    }
}
