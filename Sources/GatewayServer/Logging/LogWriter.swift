import SENSClient
import NIOConcurrencyHelpers
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Writes whole log lines to a file descriptor from a thread of its own, so that no event loop ever blocks in
/// `write(2)` on a slow log consumer.
///
/// Lines are appended to a buffer bounded in bytes; the writer thread takes everything buffered at once and writes it
/// in as few calls as the descriptor allows, so one `write(2)` carries many lines under load. A line that does not
/// fit in the buffer is dropped whole and counted (``droppedLines``, `sensgate_log_lines_dropped_total`); a line is
/// never cut (short writes are continued). swift-log ships no such writer (its stream handler writes on the calling
/// thread), hence this small one on NIO's thread pool: measured, the writes were ~4% of the gateway's CPU on the event loops and a consumer
/// that stalls stalls them all.
public final class LogWriter: Sendable {
    /// The process's standard output, started on first use.
    public static let standardOutput = LogWriter(descriptor: STDOUT_FILENO)

    /// Where the writer stands; the condition's value, so that waiting for a state is one wait, not a poll.
    private enum Phase: Equatable {
        /// Nothing buffered, nothing being written.
        case idle
        /// Lines wait for the writer thread.
        case pending
        /// The writer thread is writing a batch; nothing else is buffered.
        case writing
    }

    private let descriptor: Int32
    private let capacity: Int
    /// Guards ``pending``; its value is the writer's ``Phase``.
    private let condition = ConditionLock<Phase>(value: .idle)
    private nonisolated(unsafe) var pending: [UInt8] = []
    /// The condition's value, readable while holding its lock (the condition's own accessor takes the lock).
    private nonisolated(unsafe) var phase = Phase.idle
    private let dropped = Atomic<Int>(0)
    /// One thread of its own (NIO's thread pool), which the writer occupies for the life of the process.
    private let thread = NIOThreadPool(numberOfThreads: 1)
    /// How long the writer gathers lines after a wake.
    static let gatherMicroseconds: UInt32 = 5000

    /// - Parameters:
    ///   - descriptor: Where lines go.
    ///   - capacity: Most bytes held for the writer; lines beyond are dropped and counted.
    public init(descriptor: Int32, capacity: Int = 4 << 20) {
        self.descriptor = descriptor
        self.capacity = capacity
        self.thread.start()
        self.thread.submit { [self] _ in self.run() }
    }

    /// Hands one whole line (with its newline) to the writer; never blocks on the descriptor.
    public func write(_ line: [UInt8]) {
        self.condition.lock()
        guard self.pending.count + line.count <= self.capacity else {
            self.condition.unlock()
            self.dropped.wrappingAdd(1, ordering: .relaxed)
            return
        }
        self.pending.append(contentsOf: line)
        // Only a line that finds the writer asleep wakes it (a broadcast is a system call); while it writes or gathers
        // it finds what was added on its own.
        if self.phase == .idle {
            self.unlock(phase: .pending)
        } else {
            self.condition.unlock()
        }
    }

    /// Lines dropped because the buffer was full (the consumer was too slow) or the descriptor failed.
    public var droppedLines: Int { self.dropped.load(ordering: .relaxed) }

    /// Waits until every line handed over so far has been written (at exit), at most `limit`.
    public func flush(limit: Duration = .seconds(2)) {
        if self.condition.lock(whenValue: .idle, timeoutSeconds: limit.secondsValue) { self.condition.unlock() }
    }

    private func run() {
        var batch: [UInt8] = []
        while true {
            self.condition.lock(whenValue: .pending)
            self.condition.unlock()
            // Woken by a line: gather for a moment, so that under load a wake and a write(2) carry many lines
            // (measured: a wake per batch of one or two lines was 4% of the gateway's CPU). Lines wait at most this.
            usleep(Self.gatherMicroseconds)
            self.condition.lock()
            swap(&batch, &self.pending)
            self.unlock(phase: .writing)
            if !self.writeAll(batch) {
                // The descriptor failed (closed pipe, full disk): those lines are lost; count them.
                self.dropped.wrappingAdd(batch.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }, ordering: .relaxed)
            }
            batch.removeAll(keepingCapacity: batch.capacity <= 1 << 20)
            self.condition.lock()
            self.unlock(phase: self.pending.isEmpty ? .idle : .pending)
        }
    }

    /// Sets the phase and releases the lock (waking whoever waits for that phase).
    private func unlock(phase: Phase) {
        self.phase = phase
        self.condition.unlock(withValue: phase)
    }

    /// Writes every byte, continuing short writes; false when the descriptor fails.
    private func writeAll(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return true }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(self.descriptor, base + offset, raw.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && (errno == EINTR || errno == EAGAIN) {
                    if errno == EAGAIN { usleep(1000) }
                } else {
                    return false
                }
            }
            return true
        }
    }
}
