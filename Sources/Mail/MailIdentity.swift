// This host's mail identity from control files, with qmail's defaulting chain:
// every host-ish setting falls back to `me`.
import Core

public enum MailConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingMe(String)
    case control(ControlError)

    public var description: String {
        switch self {
        case .missingMe(let path): return "unable to read controls: \(path) is missing or empty"
        case .control(let e): return "unable to read controls: \(e)"
        }
    }
}

public struct MailIdentity: Equatable, Sendable {
    public var me: String
    public var defaultDomain: String
    public var defaultHost: String
    public var idHost: String
    public var plusDomain: String
    public var envNoAtHost: String
    public var heloHost: String
    public var smtpGreeting: String
    public var localIPHost: String
    /// Domains delivered locally: `locals`, or `me` alone when the file is missing.
    public var locals: [String]

    public static func load(_ control: ControlFiles) -> Result<MailIdentity, MailConfigError> {
        func read(_ name: String, _ fallback: String) -> Result<String, MailConfigError> {
            control.value(name, default: fallback).map { $0 ?? fallback }.mapError { .control($0) }
        }
        let me: String
        switch control.value("me") {
        case .failure(let e): return .failure(.control(e))
        case .success(let value):
            guard let value, !value.isEmpty else { return .failure(.missingMe(control.path("me"))) }
            me = value
        }
        do throws(MailConfigError) {
            let locals = try control.list("locals").mapError { MailConfigError.control($0) }.get()
            return .success(MailIdentity(
                me: me,
                defaultDomain: try read("defaultdomain", me).get(),
                defaultHost: try read("defaulthost", me).get(),
                idHost: try read("idhost", me).get(),
                plusDomain: try read("plusdomain", me).get(),
                envNoAtHost: try read("envnoathost", me).get(),
                heloHost: try read("helohost", me).get(),
                smtpGreeting: try read("smtpgreeting", me).get(),
                localIPHost: try read("localiphost", me).get(),
                locals: locals ?? [me]))
        } catch {
            return .failure(error)
        }
    }
}
