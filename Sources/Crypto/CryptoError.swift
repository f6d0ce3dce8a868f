// Errors of the Crypto module's control path (building transforms from keys and
// algorithm names). The packet path never throws; it returns CryptoVerdict.

import CCrypto

public struct CryptoError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, so callers (and tests) can branch without parsing text.
    public enum Kind: Sendable, Equatable {
        case keySize            // key material of the wrong length for the algorithm
        case combination        // algorithms that cannot be used together
        case providerMissing    // the OpenSSL provider the algorithm lives in is absent
        case openssl            // libcrypto refused an operation it should accept
    }

    public let kind: Kind
    /// A sentence naming the algorithm, the problem and how to fix it.
    public let message: String

    public var description: String { message }

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// An internal libcrypto failure, with OpenSSL's own reason appended and the
    /// thread's error queue cleared.
    static func openssl(_ what: String) -> CryptoError {
        let reason = opensslReason()
        return CryptoError(.openssl, "OpenSSL failed to \(what)\(reason.isEmpty ? "" : ": " + reason)")
    }

    /// OpenSSL's reason for the thread's last failure ("" when none), the error queue
    /// cleared (also for encd-iked's IKECrypto).
    public static func opensslReason() -> String {
        var reason = ""
        let code = ERR_get_error()
        if code != 0 {
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            reason = String(cString: buf)
        }
        ERR_clear_error()
        return reason
    }
}
