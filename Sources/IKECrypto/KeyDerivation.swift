// IKEv2 key derivation and the SK payload's AEAD (RFC 7296 §2.13-§2.15, §3.14;
// RFC 5282), encd-iked's crypto.c (issue #10). Control path: allocates freely; keys are
// SecretKeys, wiped when released.
//
// Stages for a new IKE SA:
//   SKEYSEED = prf(Ni | Nr, g^ir)                                      (§2.14)
//   {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//            = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)                   (§2.14, §2.13)
//   PSK AUTH = prf(prf(secret, "Key Pad for IKEv2"), octets)           (§2.15)
// and each SK payload sealed or opened with SK_e of its sender.

#if canImport(Glibc)
import Glibc
#endif
import CCrypto
import Crypto

public enum IKECryptoError: Error, Equatable, Sendable {
    case openssl(String)
    /// The SK payload is shorter than its IV and ICV, or its padding is impossible.
    case malformed(String)
    /// The ICV did not verify: the message is not the peer's (§2.21: silently dropped).
    case authenticationFailed
}

/// A pseudorandom function (§3.3.2 transform type 2): HMAC with SHA-2.
public enum IKEPRF: UInt16, Sendable {
    case hmacSHA256 = 5, hmacSHA384 = 6, hmacSHA512 = 7

    /// Output (and preferred key) length in bytes.
    public var length: Int {
        switch self {
        case .hmacSHA256: return 32
        case .hmacSHA384: return 48
        case .hmacSHA512: return 64
        }
    }

    var digest: OpaquePointer {
        switch self {
        case .hmacSHA256: return EVP_sha256()
        case .hmacSHA384: return EVP_sha384()
        case .hmacSHA512: return EVP_sha512()
        }
    }

    /// prf(key, data).
    public func callAsFunction(_ key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var n: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                out.withUnsafeMutableBytes { o in
                    HMAC(digest, k.baseAddress, Int32(k.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self), d.count,
                         o.baseAddress?.assumingMemoryBound(to: UInt8.self), &n) != nil
                }
            }
        }
        precondition(ok && Int(n) == length, "HMAC failed")   // only on memory exhaustion
        return Array(out.prefix(length))
    }

    /// prf+(key, seed) (§2.13): T1 | T2 | ..., Tn = prf(key, Tn-1 | seed | n), cut to
    /// `count` bytes; at most 255 blocks.
    public func plus(_ key: [UInt8], _ seed: [UInt8], count: Int) -> [UInt8]? {
        guard count >= 0, count <= 255 * length else { return nil }
        var out: [UInt8] = []
        var t: [UInt8] = []
        var n: UInt8 = 1
        while out.count < count {
            t = self(key, t + seed + [n])
            out += t
            n &+= 1
        }
        return Array(out.prefix(count))
    }
}

/// The keys of an IKE SA (§2.14).
public struct IKESAKeys {
    public let d: SecretKey, ai: SecretKey, ar: SecretKey, ei: SecretKey, er: SecretKey, pi: SecretKey, pr: SecretKey

    /// Derives them from the Diffie-Hellman secret, the nonces and the SPIs.
    /// `integrityLength` is 0 with an AEAD; `encryptionLength` includes an AEAD's salt.
    public init?(prf: IKEPRF, sharedSecret: [UInt8], ni: [UInt8], nr: [UInt8], spii: UInt64, spir: UInt64,
                 encryptionLength: Int, integrityLength: Int) {
        self.init(prf: prf, skeyseed: prf(ni + nr, sharedSecret), ni: ni, nr: nr, spii: spii, spir: spir,
                  encryptionLength: encryptionLength, integrityLength: integrityLength)
    }

    /// The keys of a rekeyed IKE SA (§2.18): SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr),
    /// the rest with the new SA's PRF as for a first IKE SA.
    public init?(rekeying oldPRF: IKEPRF, skD: SecretKey, prf: IKEPRF, sharedSecret: [UInt8], ni: [UInt8], nr: [UInt8],
                 spii: UInt64, spir: UInt64, encryptionLength: Int, integrityLength: Int) {
        let skeyseed = skD.withUnsafeBytes { oldPRF(Array($0), sharedSecret + ni + nr) }
        self.init(prf: prf, skeyseed: skeyseed, ni: ni, nr: nr, spii: spii, spir: spir,
                  encryptionLength: encryptionLength, integrityLength: integrityLength)
    }

    init?(prf: IKEPRF, skeyseed: [UInt8], ni: [UInt8], nr: [UInt8], spii: UInt64, spir: UInt64,
          encryptionLength: Int, integrityLength: Int) {
        let spis: [UInt8] = IKESAKeys.bigEndian(spii) + IKESAKeys.bigEndian(spir)
        let lengths = [prf.length, integrityLength, integrityLength, encryptionLength, encryptionLength, prf.length, prf.length]
        guard let all = prf.plus(skeyseed, ni + nr + spis, count: lengths.reduce(0, +)) else { return nil }
        var keys: [SecretKey] = []
        var at = 0
        for n in lengths {
            keys.append(SecretKey(Array(all[at..<(at + n)])))
            at += n
        }
        (d, ai, ar, ei, er, pi, pr) = (keys[0], keys[1], keys[2], keys[3], keys[4], keys[5], keys[6])
    }

    static func bigEndian(_ v: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
        return out
    }

    /// SKEYSEED alone (tests and IKE SA rekeying).
    public static func skeyseed(prf: IKEPRF, sharedSecret: [UInt8], ni: [UInt8], nr: [UInt8]) -> [UInt8] {
        prf(ni + nr, sharedSecret)
    }
}

/// Shared-key authentication (§2.15).
public enum IKEPSKAuth {
    static let keyPad = Array("Key Pad for IKEv2".utf8)

    /// The signed octets: the sender's first message, the peer's nonce, and
    /// prf(SK_p of the sender, the sender's ID payload body).
    public static func octets(firstMessage: [UInt8], peerNonce: [UInt8], prf: IKEPRF, skP: SecretKey, idBody: [UInt8]) -> [UInt8] {
        firstMessage + peerNonce + skP.withUnsafeBytes { prf(Array($0), idBody) }
    }

    /// AUTH = prf(prf(secret, "Key Pad for IKEv2"), octets).
    public static func auth(prf: IKEPRF, secret: SecretKey, octets: [UInt8]) -> [UInt8] {
        let padded = secret.withUnsafeBytes { prf(Array($0), keyPad) }
        return prf(padded, octets)
    }
}

/// The AEADs of the SK payload, AES-GCM with a 16-byte ICV (RFC 5282) and
/// ChaCha20-Poly1305 (RFC 7634 §3): the key's last 4 bytes are the salt, the nonce is
/// salt | IV, an 8-byte IV follows the generic payload header, and the AAD is the IKE
/// header plus the SK payload's generic header.
public enum IKEAEADCipher: Sendable {
    case aesGCM, chacha20Poly1305

    func evp(keyBytes: Int) -> OpaquePointer? {
        switch self {
        case .chacha20Poly1305: return keyBytes == 32 ? EVP_chacha20_poly1305() : nil
        case .aesGCM: return keyBytes == 16 ? EVP_aes_128_gcm() : keyBytes == 24 ? EVP_aes_192_gcm() : keyBytes == 32 ? EVP_aes_256_gcm() : nil
        }
    }
}

public enum IKEAEAD {
    public static let ivLength = 8, icvLength = 16

    /// Opens the SK payload whose body (IV, ciphertext, ICV) starts at `bodyOffset` of
    /// `message` (the whole message, as received) and returns the inner payloads'
    /// bytes with the padding removed.
    public static func open(message: [UInt8], bodyOffset: Int, key: SecretKey, cipher: IKEAEADCipher = .aesGCM) -> Result<[UInt8], IKECryptoError> {
        guard bodyOffset >= 4, bodyOffset <= message.count, message.count - bodyOffset >= ivLength + icvLength + 1 else {
            return .failure(.malformed("SK payload shorter than IV, pad length and ICV"))
        }
        let aad = Array(message[0..<bodyOffset])
        let iv = Array(message[bodyOffset..<(bodyOffset + ivLength)])
        let ciphertext = Array(message[(bodyOffset + ivLength)..<(message.count - icvLength)])
        var tag = Array(message[(message.count - icvLength)...])
        return key.withUnsafeBytes { k -> Result<[UInt8], IKECryptoError> in
            guard k.count > 4, cipher.evp(keyBytes: k.count - 4) != nil else { return .failure(.malformed("\(cipher) key of \(k.count) bytes")) }
            let nonce = Array(k[(k.count - 4)...]) + iv
            guard let plain = aead(cipher, decrypt: true, key: Array(k[0..<(k.count - 4)]), nonce: nonce, aad: aad, input: ciphertext, tag: &tag) else {
                return .failure(.authenticationFailed)
            }
            // Padding, then its length (§3.14).
            guard let padLength = plain.last, Int(padLength) < plain.count else { return .failure(.malformed("pad length")) }
            return .success(Array(plain[0..<(plain.count - 1 - Int(padLength))]))
        }
    }

    /// The padding an SK payload carried (tests: rebuilding a peer's message exactly).
    static func padding(message: [UInt8], bodyOffset: Int, key: SecretKey, cipher: IKEAEADCipher = .aesGCM) -> [UInt8]? {
        guard case .success(let inner) = open(message: message, bodyOffset: bodyOffset, key: key, cipher: cipher) else { return nil }
        let plainLength = message.count - bodyOffset - ivLength - icvLength
        return key.withUnsafeBytes { k -> [UInt8]? in
            let nonce = Array(k[(k.count - 4)...]) + Array(message[bodyOffset..<(bodyOffset + ivLength)])
            var tag = Array(message[(message.count - icvLength)...])
            guard let plain = aead(cipher, decrypt: true, key: Array(k[0..<(k.count - 4)]), nonce: nonce, aad: Array(message[0..<bodyOffset]),
                                  input: Array(message[(bodyOffset + ivLength)..<(message.count - icvLength)]), tag: &tag) else { return nil }
            return Array(plain[inner.count..<(plainLength - 1)])
        }
    }

    /// Seals `inner` (the encoded payloads inside) into a whole message: the IKE header
    /// (its length set here), an SK payload whose "next payload" is `firstInner`, the
    /// IV, the ciphertext of inner | padding | pad length, and the ICV. The IV must never
    /// repeat under one key (a counter or random; RFC 5282 §3.1).
    /// With `fragment`, an SKF payload instead (RFC 7383 §2.5: the fragment number and
    /// total follow the generic header and are part of the AAD).
    public static func seal(header: [UInt8], firstInner: UInt8, inner: [UInt8], padding: [UInt8] = [], iv: [UInt8],
                            key: SecretKey, cipher: IKEAEADCipher = .aesGCM,
                            fragment: (number: UInt16, total: UInt16)? = nil) -> Result<[UInt8], IKECryptoError> {
        guard header.count == 28, iv.count == ivLength, padding.count < 256 else { return .failure(.malformed("header, IV or padding size")) }
        let plain = inner + padding + [UInt8(padding.count)]
        let skLength = (fragment == nil ? 4 : 8) + ivLength + plain.count + icvLength
        let total = header.count + skLength
        guard skLength <= 0xffff else { return .failure(.malformed("SK payload of \(skLength) bytes")) }
        var aad = header
        aad[24] = UInt8(truncatingIfNeeded: total >> 24); aad[25] = UInt8(truncatingIfNeeded: total >> 16)
        aad[26] = UInt8(truncatingIfNeeded: total >> 8); aad[27] = UInt8(truncatingIfNeeded: total)
        aad[16] = fragment == nil ? IKEPayloadTypeSK : IKEPayloadTypeSKF
        aad += [firstInner, 0, UInt8(skLength >> 8), UInt8(skLength & 0xff)]
        if let f = fragment { aad += [UInt8(f.number >> 8), UInt8(f.number & 0xff), UInt8(f.total >> 8), UInt8(f.total & 0xff)] }
        return key.withUnsafeBytes { k -> Result<[UInt8], IKECryptoError> in
            guard k.count > 4, cipher.evp(keyBytes: k.count - 4) != nil else { return .failure(.malformed("\(cipher) key of \(k.count) bytes")) }
            let nonce = Array(k[(k.count - 4)...]) + iv
            var tag = [UInt8](repeating: 0, count: icvLength)
            guard let sealed = aead(cipher, decrypt: false, key: Array(k[0..<(k.count - 4)]), nonce: nonce, aad: aad, input: plain, tag: &tag) else {
                return .failure(.openssl("\(cipher) encryption"))
            }
            return .success(aad + iv + sealed + tag)
        }
    }

    /// One AEAD operation; for decryption, nil when the tag does not verify.
    static func aead(_ kind: IKEAEADCipher, decrypt: Bool, key: [UInt8], nonce: [UInt8], aad: [UInt8], input: [UInt8],
                     tag: inout [UInt8]) -> [UInt8]? {
        guard let ctx = EVP_CIPHER_CTX_new(), let cipher = kind.evp(keyBytes: key.count) else { return nil }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: input.count + 16)
        var n: Int32 = 0, total = 0
        guard EVP_CipherInit_ex(ctx, cipher, nil, nil, nil, decrypt ? 0 : 1) == 1,
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, Int32(nonce.count), nil) == 1,
              EVP_CipherInit_ex(ctx, nil, nil, key, nonce, -1) == 1,
              EVP_CipherUpdate(ctx, nil, &n, aad, Int32(aad.count)) == 1,
              out.withUnsafeMutableBufferPointer({ EVP_CipherUpdate(ctx, $0.baseAddress, &n, input, Int32(input.count)) }) == 1
        else { return nil }
        total = Int(n)
        if decrypt {
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(tag.count), &tag) == 1 else { return nil }
        }
        guard out.withUnsafeMutableBufferPointer({ EVP_CipherFinal_ex(ctx, $0.baseAddress! + total, &n) }) == 1 else { return nil }
        total += Int(n)
        if !decrypt {
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, Int32(tag.count), &tag) == 1 else { return nil }
        }
        return Array(out.prefix(total))
    }
}

/// NAT detection (§2.23): SHA-1(SPIi | SPIr | IP address | port) for the
/// NAT_DETECTION_SOURCE_IP / NAT_DETECTION_DESTINATION_IP notifies; `address` is 4 or
/// 16 bytes, the SPIr is 0 in the IKE_SA_INIT request.
public enum IKENATDetection {
    public static func hash(spii: UInt64, spir: UInt64, address: [UInt8], port: UInt16) -> [UInt8] {
        let data = IKESAKeys.bigEndian(spii) + IKESAKeys.bigEndian(spir) + address + [UInt8(port >> 8), UInt8(port & 0xff)]
        var out = [UInt8](repeating: 0, count: 20)
        var n: UInt32 = 0
        let ok = data.withUnsafeBytes { d in
            out.withUnsafeMutableBytes { o in
                EVP_Digest(d.baseAddress, d.count, o.baseAddress?.assumingMemoryBound(to: UInt8.self), &n, EVP_sha1(), nil) == 1
            }
        }
        precondition(ok && n == 20, "SHA-1 failed")   // only on memory exhaustion
        return out
    }
}

/// A CHILD SA's keys (§2.17): KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken in
/// order: initiator-to-responder encryption and integrity keys, then responder-to-
/// initiator's. `encryptionLength` includes an AEAD's salt (ESP's 160/224/288-bit
/// AES-GCM and ChaCha20-Poly1305 keys); `integrityLength` is 0 with an AEAD.
public struct IKEChildKeys {
    public let encryptionIR: SecretKey, integrityIR: SecretKey, encryptionRI: SecretKey, integrityRI: SecretKey

    public init?(prf: IKEPRF, skD: SecretKey, ni: [UInt8], nr: [UInt8], pfsSecret: [UInt8]? = nil,
                 encryptionLength: Int, integrityLength: Int) {
        let seed = (pfsSecret ?? []) + ni + nr
        let total = 2 * (encryptionLength + integrityLength)
        guard let keymat = skD.withUnsafeBytes({ prf.plus(Array($0), seed, count: total) }) else { return nil }
        var at = 0
        func take(_ n: Int) -> SecretKey {
            defer { at += n }
            return SecretKey(Array(keymat[at..<(at + n)]))
        }
        encryptionIR = take(encryptionLength)
        integrityIR = take(integrityLength)
        encryptionRI = take(encryptionLength)
        integrityRI = take(integrityLength)
    }
}

/// Integrity for a non-AEAD SK payload (transform type 3): HMAC-SHA2 truncated to half
/// its length (RFC 4868: 256-128, 384-192, 512-256).
public enum IKEIntegrity: UInt16, Sendable {
    case hmacSHA256_128 = 12, hmacSHA384_192 = 13, hmacSHA512_256 = 14

    var prf: IKEPRF {
        switch self {
        case .hmacSHA256_128: return .hmacSHA256
        case .hmacSHA384_192: return .hmacSHA384
        case .hmacSHA512_256: return .hmacSHA512
        }
    }
    /// Key length in bytes (SK_ai, SK_ar).
    public var keyLength: Int { prf.length }
    public var icvLength: Int { prf.length / 2 }

    func icv(_ key: SecretKey, _ data: [UInt8]) -> [UInt8] {
        Array(key.withUnsafeBytes { prf(Array($0), data) }.prefix(icvLength))
    }
}

/// AES-CBC with HMAC-SHA2 for the SK payload (§3.14): a 16-byte IV after the generic
/// payload header, the payloads padded to the block size, and the ICV, computed over
/// the whole message up to it, after the ciphertext (the RFC 8247 MUST for vendor
/// gateways that have no AEAD).
public enum IKECBC {
    public static let ivLength = 16, blockSize = 16

    /// Verifies the ICV, then decrypts; the inner payloads' bytes, padding removed.
    public static func open(message: [UInt8], bodyOffset: Int, encryptionKey: SecretKey, integrityKey: SecretKey,
                            integrity: IKEIntegrity) -> Result<[UInt8], IKECryptoError> {
        let icvLength = integrity.icvLength
        guard bodyOffset >= 4, bodyOffset <= message.count, message.count - bodyOffset >= ivLength + blockSize + icvLength,
              (message.count - bodyOffset - ivLength - icvLength) % blockSize == 0 else {
            return .failure(.malformed("SK payload is not IV, whole blocks and ICV"))
        }
        let icv = integrity.icv(integrityKey, Array(message[0..<(message.count - icvLength)]))
        let got = Array(message[(message.count - icvLength)...])
        guard CRYPTO_memcmp(icv, got, icvLength) == 0 else { return .failure(.authenticationFailed) }
        let iv = Array(message[bodyOffset..<(bodyOffset + ivLength)])
        guard let plain = encryptionKey.withUnsafeBytes({ cbc(decrypt: true, key: Array($0), iv: iv,
                                                               input: Array(message[(bodyOffset + ivLength)..<(message.count - icvLength)])) }),
              let padLength = plain.last, Int(padLength) < plain.count else {
            return .failure(.malformed("AES-CBC decryption or pad length"))
        }
        return .success(Array(plain[0..<(plain.count - 1 - Int(padLength))]))
    }

    /// Seals `inner` into a whole message (header length, SK header set here). Without
    /// `padding`, zero bytes fill the last block.
    public static func seal(header: [UInt8], firstInner: UInt8, inner: [UInt8], padding: [UInt8]? = nil, iv: [UInt8],
                            encryptionKey: SecretKey, integrityKey: SecretKey, integrity: IKEIntegrity,
                            fragment: (number: UInt16, total: UInt16)? = nil) -> Result<[UInt8], IKECryptoError> {
        let pad = padding ?? [UInt8](repeating: 0, count: (blockSize - (inner.count + 1) % blockSize) % blockSize)
        let plain = inner + pad + [UInt8(truncatingIfNeeded: pad.count)]
        guard header.count == 28, iv.count == ivLength, pad.count < 256, plain.count % blockSize == 0 else {
            return .failure(.malformed("header, IV or padding size"))
        }
        let skLength = (fragment == nil ? 4 : 8) + ivLength + plain.count + integrity.icvLength
        guard skLength <= 0xffff else { return .failure(.malformed("SK payload of \(skLength) bytes")) }
        let total = header.count + skLength
        var out = header
        out[16] = fragment == nil ? IKEPayloadTypeSK : IKEPayloadTypeSKF
        out[24] = UInt8(truncatingIfNeeded: total >> 24); out[25] = UInt8(truncatingIfNeeded: total >> 16)
        out[26] = UInt8(truncatingIfNeeded: total >> 8); out[27] = UInt8(truncatingIfNeeded: total)
        out += [firstInner, 0, UInt8(skLength >> 8), UInt8(skLength & 0xff)]
        if let f = fragment { out += [UInt8(f.number >> 8), UInt8(f.number & 0xff), UInt8(f.total >> 8), UInt8(f.total & 0xff)] }
        out += iv
        guard let cipher = encryptionKey.withUnsafeBytes({ cbc(decrypt: false, key: Array($0), iv: iv, input: plain) }) else {
            return .failure(.openssl("AES-CBC encryption"))
        }
        out += cipher
        return .success(out + integrity.icv(integrityKey, out))
    }

    static func cbc(decrypt: Bool, key: [UInt8], iv: [UInt8], input: [UInt8]) -> [UInt8]? {
        let cipher: OpaquePointer? = key.count == 16 ? EVP_aes_128_cbc() : key.count == 24 ? EVP_aes_192_cbc() : key.count == 32 ? EVP_aes_256_cbc() : nil
        guard let cipher, let ctx = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: input.count + blockSize)
        var n: Int32 = 0, total = 0
        guard EVP_CipherInit_ex(ctx, cipher, nil, key, iv, decrypt ? 0 : 1) == 1, EVP_CIPHER_CTX_set_padding(ctx, 0) == 1,
              out.withUnsafeMutableBufferPointer({ EVP_CipherUpdate(ctx, $0.baseAddress, &n, input, Int32(input.count)) }) == 1 else { return nil }
        total = Int(n)
        guard out.withUnsafeMutableBufferPointer({ EVP_CipherFinal_ex(ctx, $0.baseAddress! + total, &n) }) == 1 else { return nil }
        return Array(out.prefix(total + Int(n)))
    }
}

/// The SK payload's type (46), for the header's first-payload field.
let IKEPayloadTypeSK: UInt8 = 46, IKEPayloadTypeSKF: UInt8 = 53
