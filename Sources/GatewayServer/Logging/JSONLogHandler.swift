public import Logging

/// A swift-log handler that writes one JSON object per line (``JSONLogLine``) to standard output, through the
/// process's ``LogWriter`` (or to any byte sink).
///
/// Keys: `time` (RFC 3339 UTC, milliseconds), `level`, `logger`, `msg`, then the metadata sorted by key.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: @Sendable ([UInt8]) -> Void

    /// Creates a handler that writes to standard output, off the calling thread.
    public init(label: String) {
        self.init(label: label, sink: LogWriter.standardOutput.write)
    }

    /// Creates a handler that hands each finished line (with its newline) to `sink`.
    public init(label: String, sink: @escaping @Sendable ([UInt8]) -> Void) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = JSONLogLine(level: event.level, label: self.label, message: event.message.description)
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for key in merged.keys.sorted() {
            guard let value = merged[key] else { continue }
            line.field(key, metadata: value)
        }
        self.sink(line.finish())
    }
}
