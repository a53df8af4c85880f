// libidn2 behind Core's IDNConverter: linked only into indimail-tls, whose qmail-remote
// turns a U-label recipient domain into the A-label name it looks up in DNS.
import CIDN2
import Core
import Glibc

public enum LibIDN2: IDNConverter {
    /// idn2_lookup_u8 with NFC normalization of the input, as the reference calls it.
    public static func asciiDomain(_ name: [UInt8]) -> Result<String, IDNError> {
        // A NUL would end the C string early and convert a different name.
        guard !name.contains(0) else { return .failure(.invalid("string contains a NUL byte")) }
        var output: UnsafeMutablePointer<UInt8>?
        let rc = (name + [0]).withUnsafeBufferPointer { input -> Int32 in
            guard let base = input.baseAddress else { return Int32(IDN2_ENCODING_ERROR.rawValue) }
            return idn2_lookup_u8(base, &output, Int32(IDN2_NFC_INPUT.rawValue))
        }
        guard rc == Int32(IDN2_OK.rawValue), let result = output else {
            if let output { idn2_free(output) }
            if rc == Int32(IDN2_MALLOC.rawValue) { return .failure(.noMemory) }
            let why = idn2_strerror(rc).map { String(cString: $0) } ?? "error \(rc)"
            return .failure(.invalid(why))
        }
        defer { idn2_free(result) }
        let ascii = UnsafeBufferPointer(start: result, count: strlen(UnsafeRawPointer(result).assumingMemoryBound(to: CChar.self)))
        return .success(String(decoding: ascii, as: UTF8.self))
    }
}
