import Foundation
@testable import GatewayServer
import SENSMock
import Signing
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Log lines leave the event loops through a writer thread behind a bounded buffer: whole lines always, drops counted
/// when the consumer is too slow, and never a stalled request.
@Suite("Log writer")
struct LogWriterTests {
    /// A pipe: (read end, write end).
    static func pipe() throws -> (Int32, Int32) {
        var ends: [Int32] = [0, 0]
        guard Glibc.pipe(&ends) == 0 else { throw RawHTTP.RawHTTPError.malformed("pipe failed") }
        return (ends[0], ends[1])
    }

    /// Reads from `descriptor` until no byte arrives for a while after `expected` bytes or more, or it closes.
    static func readAll(_ descriptor: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var idle = 0
        while idle < 50 {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, 65536) }
            if count > 0 {
                bytes += chunk[..<count]
                idle = 0
            } else {
                idle += 1
                usleep(10_000)
            }
        }
        return bytes
    }

    static func line(_ index: Int, thread: Int) -> [UInt8] {
        Array(#"{"msg":"request","n":\#(index),"thread":\#(thread),"pad":"\#(String(repeating: "x", count: 80))"}"#.utf8) + [10]
    }

    @Test("log timestamps are the C library's UTC calendar, leap days and century years included", arguments: [
        0, 59, 86_399, 86_400, 951_782_399, 951_782_400, 951_868_800, 978_307_199, 1_709_164_800, 1_764_892_800, 4_102_444_799,
        4_107_542_400, 253_402_300_799,
    ])
    func timestamps(_ seconds: Int) {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let expected = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.042Z", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec))
        #expect(JSONLogLine.timestamp(seconds: time_t(seconds), milliseconds: 42) == expected)
    }

    @Test("every day of 400 years (one whole Gregorian cycle) reads as the C library reads it")
    func timestampsOverACycle() {
        var mismatches = 0
        for day in stride(from: 0, to: 146_097, by: 1) {
            let seconds = day * 86_400 + (day * 7_919) % 86_400
            var time = time_t(seconds)
            var parts = tm()
            gmtime_r(&time, &parts)
            let text = JSONLogLine.timestamp(seconds: time_t(seconds), milliseconds: 0)
            let expected = String(
                format: "%04d-%02d-%02dT%02d:%02d:%02d.000Z", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
            if text != expected { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("lines from many threads arrive whole and in one piece each, none dropped while the buffer has room")
    func wholeLines() async throws {
        let (readEnd, writeEnd) = try Self.pipe()
        defer { close(readEnd) }
        let writer = LogWriter(descriptor: writeEnd, capacity: 8 << 20)
        let written = try await offThePool {
            DispatchQueue.concurrentPerform(iterations: 4) { thread in
                for index in 0..<2000 { writer.write(Self.line(index, thread: thread)) }
            }
            writer.flush()
            return Self.readAll(readEnd)
        }
        let lines = String(decoding: written, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 8000)
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        #expect(writer.droppedLines == 0)
        close(writeEnd)
    }

    @Test("a consumer that stops reading makes lines drop, whole and counted; the writers never block")
    func stalledConsumer() async throws {
        let (readEnd, writeEnd) = try Self.pipe()
        defer { close(readEnd) }
        let writer = LogWriter(descriptor: writeEnd, capacity: 16 << 10)
        let start = ContinuousClock.now
        // 20,000 lines of ~120 bytes: far more than the pipe (64 KiB) and the buffer hold while nobody reads.
        for index in 0..<20_000 { writer.write(Self.line(index, thread: 0)) }
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(writer.droppedLines > 0)
        // Now the consumer reads: what arrives is whole lines only, and with the drops accounts for every line.
        let read = try await offThePool { Self.readAll(readEnd) }
        let lines = String(decoding: read, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let complete = lines.dropLast()  // the text after the last newline is empty
        #expect(lines.last == "")
        #expect(complete.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        #expect(complete.count + writer.droppedLines == 20_000)
        close(writeEnd)
    }

    @Test("sensgate serve with a stdout nobody reads keeps answering, and counts the dropped lines")
    func serveWithStalledStdout() async throws {
        // Hard on the machine: not beside a test that measures time.
        try await LoadGate.scope {
            let serve = try await ServeProcess.start(environment: ["SENSGATE_SMS_SERVICE_ID": Fixtures.smsServiceID])
            let port = serve.port
            // Pipelined on a few connections: 4 × 400 requests, each an access-log line of ~3.7 kB (6 MB: more than
            // the writer's 4 MiB buffer and the pipe hold).
            let request = "GET /healthz?pad=\(String(repeating: "p", count: 3500)) HTTP/1.1\r\nHost: x\r\n\r\n"
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await RawHTTP.exchangeMany(port: port, String(repeating: request, count: 400), count: 400, timeout: .seconds(60)).count
                    }
                }
                let answered = try await group.reduce(0, +)
                #expect(answered == 1600)
            }
            let metrics = try await RawHTTP.exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let dropped = metrics.text.split(separator: "\n").first { $0.hasPrefix("sensgate_log_lines_dropped_total ") }
            let count = dropped.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
            #expect(count > 0, "\(dropped ?? "no sensgate_log_lines_dropped_total")")
            await serve.stop()
        }
    }
}
