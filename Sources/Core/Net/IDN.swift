// The seam for internationalized domain names: programs that look names up in DNS ask an
// IDNConverter for the ASCII form; the libidn2 side lives in indimail-tls only.

/// Why a name has no ASCII form.
public enum IDNError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not a valid IDNA2008 name (the library's reason).
    case invalid(String)
    /// The library ran out of memory.
    case noMemory

    public var description: String {
        switch self {
        case .invalid(let why): return why
        case .noMemory: return "out of memory"
        }
    }
}

/// Converts a domain name written in UTF-8 (U-labels) to the form DNS knows (A-labels,
/// `xn--…`), normalizing it to NFC first. ASCII labels come back as they are, lower-cased.
public protocol IDNConverter {
    static func asciiDomain(_ name: [UInt8]) -> Result<String, IDNError>
}

extension IDNConverter {
    /// `name` as DNS wants it: itself when it is ASCII already, else the converter's answer.
    public static func lookupName(_ name: String) -> Result<String, IDNError> {
        guard name.utf8.contains(where: { $0 >= 0x80 }) else { return .success(name) }
        return asciiDomain(Array(name.utf8))
    }
}
