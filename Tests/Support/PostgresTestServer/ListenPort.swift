// Tests only: ports for servers the tests start as separate processes.
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A loopback port for a server started as a separate process (`sensgate serve`, PostgreSQL), which must be told its
/// port before it binds.
///
/// Below the kernel's ephemeral range (32768–60999 on Linux), on purpose: a port bound as 0 and closed again was
/// handed to whatever came next — another test's outgoing connection took one as its local port, and the server
/// meant for it could not bind (CI: two `sensgate serve` did not start on one port). Outgoing connections and
/// `bind(0)` never use these; the ports handed out here are unique within the run (a counter from a start that
/// differs per process), and each is checked free by a bind before it is handed out.
public enum ListenPort {
    private static let range: ClosedRange<Int> = 20_000...32_000
    private static let next = Mutex(20_000 + Int(getpid()) % 12_000)

    /// A port nothing listens on now and no other caller in this process has been given.
    public static func reserve() throws -> Int {
        for _ in 0..<range.count {
            let port = Self.next.withLock { next -> Int in
                defer { next = next >= Self.range.upperBound ? Self.range.lowerBound : next + 1 }
                return next
            }
            if Self.isFree(port) { return port }
        }
        throw ListenPortError()
    }

    struct ListenPortError: Error {}

    private static func isFree(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
