// The algorithm tables: OpenBSD ipsec.conf(5) names, key sizes and per-packet sizes.
// Everything that names an algorithm (parser, encctl output, transforms) reads these
// tables; nothing else hard-codes key lengths.

/// The cipher families encd implements for ESP.
public enum Cipher: Sendable, Hashable {
    case null               // RFC 2410
    case aesCBC             // RFC 3602
    case aesCTR             // RFC 3686: key + 4-byte nonce
    case aesGCM             // RFC 4106, 16-byte ICV: key + 4-byte salt
    case aesGMAC            // RFC 4543: key + 4-byte salt, authentication only
    case chacha20Poly1305   // RFC 7634: 256-bit key + 4-byte salt
    case tripleDESCBC       // RFC 2451
    case blowfishCBC        // RFC 2451 (OpenSSL legacy provider)
    case cast128CBC         // RFC 2451 (OpenSSL legacy provider)

    /// Bytes of IV carried in every ESP packet.
    public var ivLength: Int {
        switch self {
        case .null: return 0
        case .aesCBC: return 16
        case .aesCTR, .aesGCM, .aesGMAC, .chacha20Poly1305: return 8
        case .tripleDESCBC, .blowfishCBC, .cast128CBC: return 8
        }
    }

    /// The cipher's block size; 1 for stream and counter modes.
    public var blockSize: Int {
        switch self {
        case .null, .aesCTR, .aesGCM, .aesGMAC, .chacha20Poly1305: return 1
        case .aesCBC: return 16
        case .tripleDESCBC, .blowfishCBC, .cast128CBC: return 8
        }
    }

    /// ESP payload + pad length + next header is a multiple of this (RFC 4303 2.4).
    public var padAlignment: Int { max(blockSize, 4) }

    /// Combined-mode ciphers carry their own ICV and take no separate auth algorithm.
    public var isCombined: Bool {
        switch self {
        case .aesGCM, .aesGMAC, .chacha20Poly1305: return true
        default: return false
        }
    }

    /// ICV bytes of a combined-mode cipher (16 for all three); 0 otherwise.
    public var combinedICVLength: Int { isCombined ? 16 : 0 }

    /// Bits of salt/nonce that follow the cipher key in the configured key material.
    public var saltBits: Int {
        switch self {
        case .aesCTR, .aesGCM, .aesGMAC, .chacha20Poly1305: return 32
        default: return 0
        }
    }

    /// Needs OpenSSL's legacy provider.
    public var isLegacy: Bool { self == .blowfishCBC || self == .cast128CBC }
}

/// One row of the ESP encryption table, as ipsec.conf(5) names it.
public struct EncryptionAlgorithm: Sendable, Hashable, CustomStringConvertible {
    /// The keyword in ipsec.conf and in `encctl -s sa` output.
    public let name: String
    public let cipher: Cipher
    /// Allowed cipher key sizes in bits, salt excluded.
    public let keyBits: ClosedRange<Int>
    /// Key sizes must be a multiple of this many bits.
    public let keyStep: Int

    public var description: String { name }

    /// Allowed sizes of the whole configured key (cipher key + salt), in bits.
    public func accepts(keyMaterialBits bits: Int) -> Bool {
        let k = bits - cipher.saltBits
        return keyBits.contains(k) && k % keyStep == 0
    }

    /// The sizes an error message quotes, e.g. "128 to 256 bits" or "288 bits".
    public var keySizeText: String {
        let lo = keyBits.lowerBound + cipher.saltBits, hi = keyBits.upperBound + cipher.saltBits
        return lo == hi ? "\(lo) bits" : "\(lo) to \(hi) bits"
    }

    public static let table: [EncryptionAlgorithm] = [
        .init(name: "null", cipher: .null, keyBits: 0...0, keyStep: 1),
        .init(name: "aes", cipher: .aesCBC, keyBits: 128...256, keyStep: 64),
        .init(name: "aes-128", cipher: .aesCBC, keyBits: 128...128, keyStep: 64),
        .init(name: "aes-192", cipher: .aesCBC, keyBits: 192...192, keyStep: 64),
        .init(name: "aes-256", cipher: .aesCBC, keyBits: 256...256, keyStep: 64),
        .init(name: "aesctr", cipher: .aesCTR, keyBits: 128...256, keyStep: 64),
        .init(name: "aes-128-ctr", cipher: .aesCTR, keyBits: 128...128, keyStep: 64),
        .init(name: "aes-192-ctr", cipher: .aesCTR, keyBits: 192...192, keyStep: 64),
        .init(name: "aes-256-ctr", cipher: .aesCTR, keyBits: 256...256, keyStep: 64),
        .init(name: "aes-128-gcm", cipher: .aesGCM, keyBits: 128...128, keyStep: 64),
        .init(name: "aes-192-gcm", cipher: .aesGCM, keyBits: 192...192, keyStep: 64),
        .init(name: "aes-256-gcm", cipher: .aesGCM, keyBits: 256...256, keyStep: 64),
        .init(name: "aes-128-gmac", cipher: .aesGMAC, keyBits: 128...128, keyStep: 64),
        .init(name: "aes-192-gmac", cipher: .aesGMAC, keyBits: 192...192, keyStep: 64),
        .init(name: "aes-256-gmac", cipher: .aesGMAC, keyBits: 256...256, keyStep: 64),
        .init(name: "chacha20-poly1305", cipher: .chacha20Poly1305, keyBits: 256...256, keyStep: 256),
        .init(name: "3des-cbc", cipher: .tripleDESCBC, keyBits: 192...192, keyStep: 192),
        .init(name: "blowfish", cipher: .blowfishCBC, keyBits: 40...448, keyStep: 8),
        .init(name: "cast128", cipher: .cast128CBC, keyBits: 40...128, keyStep: 8),
    ]

    public static func named(_ name: String) -> EncryptionAlgorithm? { table.first { $0.name == name } }

    /// ESP's default when a rule names none (ipsec.conf(5)).
    public static let defaultESP = named("aes")!
}

/// The HMAC digests behind the integrity algorithms.
public enum Digest: Sendable, Hashable {
    case md5, sha1, ripemd160, sha256, sha384, sha512

    /// OpenSSL's fetch name.
    public var opensslName: String {
        switch self {
        case .md5: return "MD5"
        case .sha1: return "SHA1"
        case .ripemd160: return "RIPEMD160"
        case .sha256: return "SHA2-256"
        case .sha384: return "SHA2-384"
        case .sha512: return "SHA2-512"
        }
    }
}

/// One row of the integrity table (ESP auth and AH), as ipsec.conf(5) names it.
public struct IntegrityAlgorithm: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let digest: Digest
    /// Exact key size in bits.
    public let keyBits: Int
    /// Truncated ICV carried in the packet (RFC 2403/2404/2857/4868).
    public let icvLength: Int

    public var description: String { name }

    public static let table: [IntegrityAlgorithm] = [
        .init(name: "hmac-md5", digest: .md5, keyBits: 128, icvLength: 12),
        .init(name: "hmac-sha1", digest: .sha1, keyBits: 160, icvLength: 12),
        .init(name: "hmac-ripemd160", digest: .ripemd160, keyBits: 160, icvLength: 12),
        .init(name: "hmac-sha2-256", digest: .sha256, keyBits: 256, icvLength: 16),
        .init(name: "hmac-sha2-384", digest: .sha384, keyBits: 384, icvLength: 24),
        .init(name: "hmac-sha2-512", digest: .sha512, keyBits: 512, icvLength: 32),
    ]

    public static func named(_ name: String) -> IntegrityAlgorithm? { table.first { $0.name == name } }

    /// The default for ESP (with a non-combined cipher) and AH (ipsec.conf(5)).
    public static let defaultAuth = named("hmac-sha2-256")!
}
