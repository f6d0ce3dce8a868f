// The benchmark cases: which SA each row uses. Tunnel mode, IPv4 outside and inside,
// documentation addresses, fixed (non-secret) key bytes; replay window 64 so input
// runs the real check-then-commit path.

import Crypto
import EncCore
import IPsec

struct BenchCase {
    enum Operation: String { case encrypt, decrypt }

    let operation: Operation
    let spec: SASpec
    /// The algorithm column, e.g. "aes-128-gcm" or "aes-128 + hmac-sha2-256".
    let label: String

    var protocolName: String { spec.proto == .esp ? "ESP" : "AH" }

    static let outerSource = IPAddress("192.0.2.1")!
    static let outerDestination = IPAddress("192.0.2.2")!
    static let innerSource = IPAddress("198.18.1.10")!
    static let innerDestination = IPAddress("198.18.2.20")!

    /// ESP with `encryption` (and `integrity` for non-combined ciphers), or AH with
    /// `integrity` when `encryption` is nil.
    static func spec(encryption: String?, integrity: String?) -> SASpec {
        let enc = encryption.map { EncryptionAlgorithm.named($0)! }
        let auth = integrity.map { IntegrityAlgorithm.named($0)! }
        let encKey = enc.map { key(bits: $0.keyBits.upperBound + $0.cipher.saltBits, seed: 0x11) }
        let authKey = auth.map { key(bits: $0.keyBits, seed: 0x5a) }
        return SASpec(proto: enc == nil ? .ah : .esp, mode: .tunnel,
                      source: outerSource, destination: outerDestination, spi: 0x1000_0001,
                      encryption: enc, encryptionKey: encKey, integrity: auth, integrityKey: authKey,
                      replayWindow: 64)
    }

    static func key(bits: Int, seed: UInt8) -> SecretKey {
        SecretKey((0..<(bits / 8)).map { seed &+ UInt8(truncatingIfNeeded: $0 &* 13) })
    }

    /// The rows, in table order: the two headline ESP suites first, then extras.
    static let all: [BenchCase] = {
        let suites: [(String?, String?, String)] = [
            ("aes-128-gcm", nil, "aes-128-gcm"),
            ("aes-128", "hmac-sha2-256", "aes-128-cbc + hmac-sha2-256"),
            ("aes-256-gcm", nil, "aes-256-gcm"),
            ("chacha20-poly1305", nil, "chacha20-poly1305"),
            (nil, "hmac-sha2-256", "hmac-sha2-256"),
        ]
        var rows: [BenchCase] = []
        for (enc, auth, label) in suites {
            let s = spec(encryption: enc, integrity: auth)
            rows.append(BenchCase(operation: .encrypt, spec: s, label: label))
            rows.append(BenchCase(operation: .decrypt, spec: s, label: label))
        }
        return rows
    }()
}
