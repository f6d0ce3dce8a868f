// KeyFingerprint: a salted digest that tells whether two SAs use the same key material
// without keeping or printing the keys: HMAC-SHA-256 keyed with a random salt (the
// state directory's), over each key's length and bytes. The sequence store keys the
// sequence space of counter-mode and combined ciphers by it, so an SA renumbered with
// the same key continues above every number it used.

import CCrypto
import EncCore

public enum KeyFingerprint {
    /// 16 bytes identifying `keys` (nil entries count as absent) under `salt`.
    public static func digest(of keys: [SecretKey?], salt: [UInt8]) -> [UInt8] {
        let saltKey = SecretKey(salt.isEmpty ? [0] : salt)
        guard let mac = try? Authenticator(digest: .sha256, key: saltKey, icvLength: 16) else {
            preconditionFailure("HMAC-SHA-256 is part of every OpenSSL build")
        }
        mac.reset()
        for key in keys {
            var length = UInt32(key?.count ?? 0).bigEndian
            withUnsafeBytes(of: &length) { mac.update($0) }
            key?.withUnsafeBytes { mac.update($0) }
        }
        var out = [UInt8](repeating: 0, count: 16)
        let ok = out.withUnsafeMutableBytes { mac.finish(into: $0.baseAddress!) }
        precondition(ok, "HMAC-SHA-256 failed")
        return out
    }
}

extension KeyFingerprint {
    /// `count` bytes from OpenSSL's CSPRNG (salts); nil when it cannot seed.
    public static func randomBytes(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBytes { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(count)) == 1 }
        return ok ? out : nil
    }
}
