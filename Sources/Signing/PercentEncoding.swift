/// Percent-escapes (`%XX`), read the one way every part of sensgate reads them: request-targets (signed as they
/// are, checked and decoded by the gateway) and the store URL. Here, beside the signature's other byte encodings,
/// because both the gateway and the store use it and the store depends on nothing else of the gateway's.
package enum PercentEncoding {
    /// The value of one hex digit, upper or lower case.
    package static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
