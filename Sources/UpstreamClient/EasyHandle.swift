internal import CCurl

#if canImport(Glibc)
import Glibc
#endif

/// A curl easy handle set up once for the client's origin, with what each transfer lends it: the error buffer curl
/// writes its failure text into, the URL handle holding the origin, and the memory of the header list.
///
/// Reused from transfer to transfer without `curl_easy_reset` while transfers end cleanly: a reset throws away every
/// option and the next transfer set them all again (the protocol list parsed, the proxy and CA strings copied, curl's
/// defaults rebuilt) — measured with `perf`, that and the header list's allocations were a quarter of the curl
/// thread's time outside libcurl's own work. So what is the same for every transfer is set here, once, and
/// ``CurlLoop`` sets on each transfer every option that differs between transfers, always all of them, so nothing of
/// one request reaches the next; curl resets its transfer info itself when it starts a transfer. One counter it does
/// not reset: how often the handle retried a dead connection (after five in its life, curl gives up on the sixth).
/// So a handle is reset (``reset(_:)``) after a transfer that failed or was cancelled, and after one for which curl
/// started more than one request (counted by the `PREREQFUNCTION` callback, which curl calls for every request it
/// sends, a retry on another kept-alive connection included), and after every ``usesBeforeReset`` transfers.
///
/// Touched only on the loop thread; ``free()`` runs once, when the handle is dropped.
final class EasyHandle {
    /// What every transfer of the client shares.
    struct Fixed {
        /// `scheme://authority`: parsed once into each handle's URL handle.
        var origin: String
        /// `http` or `https`: no other protocol, and no redirect to one.
        var allowedProtocols: String
        /// No proxy variable is set in the environment: say so (`CURLOPT_PROXY ""`) and spare curl looking five of
        /// them up per transfer. When one is set, curl reads them as usual (an egress proxy).
        var noProxy: Bool
        /// TLS: HTTP/2 by ALPN, and requests wait for a connection still in its handshake rather than open another.
        var multiplexes: Bool
        /// PEM file of the authorities to trust instead of the system's.
        var caFile: String?
        /// Stores the answer's body bytes.
        var write: sg_data_callback
        /// Hands curl the request body.
        var read: sg_data_callback
        /// Rewinds the request body, where that is safe.
        var seek: sg_seek_callback
        /// Counts the requests curl starts for a transfer (more than one: it retried).
        var started: sg_prereq_callback
    }

    /// Transfers a handle runs before it is reset even when each ended cleanly.
    static let usesBeforeReset = 256
    /// Transfers since the handle was made or reset.
    var uses = 0

    let easy: UnsafeMutableRawPointer
    /// curl's own account of a failure ("Failed to connect to … after 3001 ms: …"), for the log.
    let errorBuffer: UnsafeMutablePointer<CChar>
    /// `scheme://authority` parsed once; each request sets its request-target.
    private let url: OpaquePointer
    /// The header list of the transfer under way: its nodes, then their NUL-terminated lines, in one block that
    /// grows when a request needs more and is otherwise reused (curl reads the list while it sends; it never frees it).
    private var headerBlock: UnsafeMutableRawPointer?
    private var headerCapacity = 0

    /// - Returns: `nil` when curl cannot allocate the handle or refuses an option.
    init?(_ fixed: Fixed) {
        guard let url = curl_url() else { return nil }
        guard curl_url_set(url, CURLUPART_URL, fixed.origin, 0) == CURLUE_OK, let easy = curl_easy_init() else {
            curl_url_cleanup(url)
            return nil
        }
        self.easy = easy
        self.url = url
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        guard self.configure(fixed) else {
            self.free()
            return nil
        }
    }

    /// Clears everything of earlier transfers (`curl_easy_reset`) and sets the fixed options again.
    /// - Returns: false when curl refused an option (the handle must then be freed).
    func reset(_ fixed: Fixed) -> Bool {
        curl_easy_reset(self.easy)
        self.uses = 0
        return self.configure(fixed)
    }

    private func configure(_ fixed: Fixed) -> Bool {
        let easy = self.easy
        // A URL handle parsed once with the origin, so curl neither re-parses nor re-prints the whole URL per transfer
        // (measured in a C client: ~19% of libcurl's instructions). Each transfer sets its request-target.
        var ok = sg_easy_setopt_pointer(easy, CURLOPT_CURLU, UnsafeMutableRawPointer(self.url)) == CURLE_OK
        if fixed.noProxy { ok = ok && sg_easy_setopt_string(easy, CURLOPT_PROXY, "") == CURLE_OK }
        // Safety: the origin is fixed, redirects are not followed, no other protocol is allowed.
        ok = ok && sg_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, fixed.allowedProtocols) == CURLE_OK
        ok = ok && sg_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0) == CURLE_OK
        // The target was validated; send it exactly as signed (no dot-segment squashing).
        ok = ok && sg_easy_setopt_long(easy, CURLOPT_PATH_AS_IS, 1) == CURLE_OK
        ok = ok && sg_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1) == CURLE_OK
        ok = ok && sg_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, self.errorBuffer) == CURLE_OK
        // Best effort, as curl allows: a libcurl built without HTTP/2 refuses these and speaks HTTP/1.1.
        _ = sg_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        _ = sg_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = sg_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        if fixed.multiplexes {
            // Wait for a connection that is still in its TLS handshake rather than opening another: once HTTP/2 is
            // agreed, every request shares it. (Peer and host verification are curl's defaults.)
            _ = sg_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1)
            if let caFile = fixed.caFile {
                ok = ok && sg_easy_setopt_string(easy, CURLOPT_CAINFO, caFile) == CURLE_OK
                // Only these authorities: not also the system's certificate directory.
                ok = ok && sg_easy_setopt_pointer(easy, CURLOPT_CAPATH, nil) == CURLE_OK
            }
        }
        ok = ok && sg_easy_setopt_callback(easy, CURLOPT_WRITEFUNCTION, fixed.write) == CURLE_OK
        ok = ok && sg_easy_setopt_callback(easy, CURLOPT_READFUNCTION, fixed.read) == CURLE_OK
        ok = ok && sg_easy_setopt_seek(easy, CURLOPT_SEEKFUNCTION, fixed.seek) == CURLE_OK
        ok = ok && sg_easy_setopt_prereq(easy, fixed.started) == CURLE_OK
        return ok
    }

    /// Lays out a header list — `name: value` for each header, then the `extra` lines as given — in the handle's block,
    /// and returns its head. Valid until the next call or ``free()``.
    func headerList(_ headers: [(String, String)], extra: [StaticString]) -> UnsafeMutablePointer<curl_slist>? {
        let count = headers.count + extra.count
        guard count > 0 else { return nil }
        let nodeBytes = count * MemoryLayout<curl_slist>.stride
        var textBytes = 0
        for (name, value) in headers { textBytes += name.utf8.count + 2 + value.utf8.count + 1 }
        for line in extra { textBytes += line.utf8CodeUnitCount + 1 }
        if nodeBytes + textBytes > self.headerCapacity {
            self.headerBlock?.deallocate()
            let capacity = max(1024, (nodeBytes + textBytes) * 2)
            self.headerBlock = .allocate(byteCount: capacity, alignment: MemoryLayout<curl_slist>.alignment)
            self.headerCapacity = capacity
        }
        guard let block = self.headerBlock else { return nil }
        let nodes = block.bindMemory(to: curl_slist.self, capacity: count)
        var text = (block + nodeBytes).bindMemory(to: CChar.self, capacity: textBytes)
        var index = 0
        /// Links node `index` to the line starting at `text`; `write` copies the line's bytes and returns their count.
        func append(_ write: (UnsafeMutableRawPointer) -> Int) {
            let length = write(UnsafeMutableRawPointer(text))
            text[length] = 0
            let next = index + 1 < count ? nodes + index + 1 : nil
            (nodes + index).initialize(to: curl_slist(data: text, next: next))
            text += length + 1
            index += 1
        }
        for (name, value) in headers {
            append { destination in
                var written = Self.copy(name, to: destination)
                destination.storeBytes(of: UInt8(ascii: ":"), toByteOffset: written, as: UInt8.self)
                destination.storeBytes(of: UInt8(ascii: " "), toByteOffset: written + 1, as: UInt8.self)
                written += 2
                return written + Self.copy(value, to: destination + written)
            }
        }
        for line in extra {
            append { destination in
                destination.copyMemory(from: line.utf8Start, byteCount: line.utf8CodeUnitCount)
                return line.utf8CodeUnitCount
            }
        }
        return nodes
    }

    /// Copies a string's UTF-8 bytes; returns how many.
    private static func copy(_ string: String, to destination: UnsafeMutableRawPointer) -> Int {
        var string = string
        return string.withUTF8 { bytes in
            if let base = bytes.baseAddress { destination.copyMemory(from: base, byteCount: bytes.count) }
            return bytes.count
        }
    }

    /// Frees the handle and what it lent curl; the handle is not used again.
    func free() {
        curl_easy_cleanup(self.easy)
        curl_url_cleanup(self.url)
        self.errorBuffer.deallocate()
        self.headerBlock?.deallocate()
        self.headerBlock = nil
        self.headerCapacity = 0
    }
}
