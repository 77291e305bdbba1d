import JSON
public import Store

/// The JSON of the tracking routes, for `sensgate events` and `sensgate track` (the same bodies the routes answer).
public enum TrackingJSON {
    /// `GET /v1/requests/{requestId}`'s body.
    public static func request(_ request: TrackedRequest, results: [StoredResult]) -> [UInt8] {
        TrackedRequests.body(request, results: results)
    }

    /// `GET /v1/events`'s body.
    public static func events(_ events: [StoredEvent]) -> [UInt8] {
        DeliveryEvents.body(events)
    }

    /// Whether a row's text is JSON: it is embedded in answers as it is, so a damaged store must not break them.
    static func isJSON(_ text: String) -> Bool {
        (try? JSONValue.parse(text.utf8)) != nil
    }

    /// The answer when a stored row is not JSON.
    static var damaged: GatewayError {
        GatewayError(.storeUnavailable, "a stored row is not JSON: the store under data-dir is damaged", retryAfterSeconds: 1)
    }
}
