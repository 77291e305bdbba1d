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
}
