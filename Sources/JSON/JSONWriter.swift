// JSON: the parser and writer that results, errors and logs share — keys in order, numbers kept as text.

/// Appends compact JSON to a byte array, keys in the order written.
///
/// sensgate's output has a fixed key order and every key present (`null` when absent), which `Codable`'s synthesized
/// encoding does not give; writing bytes directly also avoids an intermediate dictionary per response.
public struct JSONWriter: Sendable {
    /// The JSON written so far.
    public private(set) var bytes: [UInt8]
    /// Whether the next value in each open container needs a comma before it: one bit per level, the innermost in bit
    /// 0 (a stack of bits, not an array: a writer is made per log line and per answer, and an array was an allocation
    /// and a bounds and uniqueness check per value). Bits pushed out past 64 levels wait in ``deeper``.
    private var needsComma: UInt64 = 0
    private var depth = 0
    private var deeper: [Bool] = []
    private var pendingValueAfterKey = false

    /// Creates an empty writer.
    /// - Parameter capacity: Bytes to reserve up front.
    public init(capacity: Int = 512) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    /// Opens an object, as a value or after ``key(_:)``.
    public mutating func beginObject() {
        self.separate()
        self.bytes.append(UInt8(ascii: "{"))
        self.push()
    }

    /// Closes the innermost object.
    public mutating func endObject() {
        self.pop()
        self.bytes.append(UInt8(ascii: "}"))
    }

    /// Opens an array.
    public mutating func beginArray() {
        self.separate()
        self.bytes.append(UInt8(ascii: "["))
        self.push()
    }

    /// Closes the innermost array.
    public mutating func endArray() {
        self.pop()
        self.bytes.append(UInt8(ascii: "]"))
    }

    /// Writes an object key; the next call writes its value.
    public mutating func key(_ name: String) {
        self.separate()
        self.appendQuoted(name)
        self.bytes.append(UInt8(ascii: ":"))
        // The value that follows must not write a comma of its own.
        self.pendingValueAfterKey = true
    }

    /// Writes an object key known when the program was built, which must need no escaping (letters, digits): copied
    /// as it is, not scanned.
    public mutating func key(literal name: StaticString) {
        self.separate()
        self.bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { self.bytes.append(contentsOf: $0) }
        self.bytes.append(UInt8(ascii: "\""))
        self.bytes.append(UInt8(ascii: ":"))
        self.pendingValueAfterKey = true
    }

    /// Writes a string value, or `null` for `nil`.
    public mutating func string(_ value: String?) {
        self.separate()
        if let value { self.appendQuoted(value) } else { self.appendLiteral("null") }
        self.markValue()
    }

    /// Writes a string value given as UTF-8 bytes (escaped as ``string(_:)`` escapes). The bytes must be valid UTF-8:
    /// they are not checked, and invalid ones make invalid JSON.
    public mutating func string(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        self.separate()
        self.appendQuoted(bytes)
        self.markValue()
    }

    /// Writes an integer value, or `null` for `nil`.
    public mutating func int(_ value: Int?) {
        self.separate()
        if let value { self.appendDecimal(value) } else { self.appendLiteral("null") }
        self.markValue()
    }

    /// Writes a number with up to three decimals (durations in milliseconds), or `null`.
    public mutating func number(_ value: Double?) {
        self.separate()
        if let value, value.isFinite {
            let scaled = (value * 1000).rounded()
            let whole = Int(scaled / 1000)
            let fraction = Int(abs(scaled).truncatingRemainder(dividingBy: 1000))
            if scaled < 0 && whole == 0 { self.bytes.append(UInt8(ascii: "-")) }
            self.appendDecimal(whole)
            if fraction != 0 {
                // Three places, trailing zeros dropped: 0.050 → .05.
                self.bytes.append(UInt8(ascii: "."))
                var digits = fraction
                var places = 3
                while digits % 10 == 0 {
                    digits /= 10
                    places -= 1
                }
                var divisor = 1
                for _ in 1..<places { divisor *= 10 }
                while divisor > 0 {
                    self.bytes.append(UInt8(ascii: "0") + UInt8(digits / divisor % 10))
                    divisor /= 10
                }
            }
        } else {
            self.appendLiteral("null")
        }
        self.markValue()
    }

    /// Writes a boolean value, or `null`.
    public mutating func bool(_ value: Bool?) {
        self.separate()
        if let value { self.appendLiteral(value ? "true" : "false") } else { self.appendLiteral("null") }
        self.markValue()
    }

    /// Writes `null`.
    public mutating func null() {
        self.separate()
        self.appendLiteral("null")
        self.markValue()
    }

    /// Writes already-serialized JSON as a value, unchanged (the caller vouches for it) — or, inside an object and not
    /// after a key, already-serialized members (`"a":1,"b":2`), which take the comma before them like a value.
    public mutating func raw(_ json: some Collection<UInt8>) {
        self.separate()
        self.bytes.append(contentsOf: json)
        self.markValue()
    }

    /// Ends a line of line-delimited JSON; the last call on a writer whose value is complete.
    public mutating func endLine() {
        self.bytes.append(UInt8(ascii: "\n"))
    }

    // MARK: Internals

    private mutating func separate() {
        if self.pendingValueAfterKey {
            self.pendingValueAfterKey = false
            return
        }
        if self.needsComma & 1 != 0 {
            self.bytes.append(UInt8(ascii: ","))
        }
        self.needsComma |= 1
    }

    private mutating func markValue() {
        self.needsComma |= 1
    }

    /// A container opens: its first value needs no comma.
    private mutating func push() {
        // Level 0 is bit 0 until the first container opens: with `depth` open, bits 0…depth are in use.
        if self.depth >= 63 { self.deeper.append(self.needsComma >> 63 != 0) }
        self.depth += 1
        self.needsComma <<= 1
    }

    /// The innermost container closes.
    private mutating func pop() {
        guard self.depth > 0 else { return }
        self.depth -= 1
        self.needsComma >>= 1
        if self.depth >= 63, let bit = self.deeper.popLast(), bit { self.needsComma |= 1 << 63 }
    }

    /// An integer in decimal, written digit by digit (no string made).
    private mutating func appendDecimal(_ value: Int) {
        if value < 0 { self.bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                count += 1
                buffer[buffer.count - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            self.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[(buffer.count - count)...]))
        }
    }

    private mutating func appendLiteral(_ text: StaticString) {
        text.withUTF8Buffer { self.bytes.append(contentsOf: $0) }
    }

    private mutating func appendQuoted(_ text: String) {
        var text = text
        text.withUTF8 { self.appendQuoted($0) }
    }

    private mutating func appendQuoted(_ utf8: UnsafeBufferPointer<UInt8>) {
        self.bytes.append(UInt8(ascii: "\""))
        // Runs that need no escape are copied whole (most text is one such run), escapes one by one.
        var runStart = 0
        for index in utf8.indices {
            let byte = utf8[index]
            guard byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
            runStart = index + 1
            switch byte {
            case UInt8(ascii: "\""): self.bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): self.bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: self.bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: self.bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: self.bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            default:
                let hex: StaticString = "0123456789abcdef"
                self.bytes.append(contentsOf: [
                    0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex.utf8Start[Int(byte >> 4)], hex.utf8Start[Int(byte & 0xF)],
                ])
            }
        }
        self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        self.bytes.append(UInt8(ascii: "\""))
    }
}
