// Loading a C library on first use (dlopen), so per-message programs do not pay the
// dynamic linker's cost for libraries only some runs need (DESIGN.md: exec cost).
import CSupport
import Glibc

public struct DynamicLibraryError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

public final class DynamicLibrary {
    private let handle: UnsafeMutableRawPointer
    public let name: String

    /// Opens the first of `names` that loads (e.g. ["libssl.so.3", "libssl.so"]).
    public static func open(_ names: [String]) -> Result<DynamicLibrary, DynamicLibraryError> {
        var last = "no library named"
        for name in names {
            if let h = dlopen(name, RTLD_NOW | RTLD_LOCAL) { return .success(DynamicLibrary(handle: h, name: name)) }
            if let e = dlerror() { last = String(cString: e) }
        }
        return .failure(DynamicLibraryError(message: "unable to load \(names.joined(separator: " or ")): \(last)"))
    }

    private init(handle: UnsafeMutableRawPointer, name: String) {
        self.handle = handle
        self.name = name
    }

    deinit { dlclose(handle) }

    /// The address of `symbol`, to be cast with unsafeBitCast to its @convention(c) type.
    public func symbol(_ symbol: String) -> Result<UnsafeMutableRawPointer, DynamicLibraryError> {
        guard let p = dlsym(handle, symbol) else {
            return .failure(DynamicLibraryError(message: "\(name): missing symbol \(symbol)"))
        }
        return .success(p)
    }
}
