// Public-key AUTH payloads (RFC 7296 §2.15, §3.8; RFC 7427; RFC 4754), encd-iked's part
// of crypto.c (issue #10). Control path: allocates freely.
//
// Stages, signing:  AUTH octets (the same as for a PSK, §2.15) -> the method the policy
//                   and the peer allow -> EVP_DigestSign -> the AUTH payload's data
//                   (method 14: length | AlgorithmIdentifier | signature, RFC 7427 §3;
//                   methods 9-11: r | s, RFC 4754 §7; method 1: PKCS#1 v1.5 over SHA-1)
// verifying:        the same in reverse; an AlgorithmIdentifier is read by the small DER
//                   reader below and matched against the schemes encd-iked knows.

#if canImport(Glibc)
import Glibc
#endif
import CCrypto
import Crypto
import EncCore

/// AUTH methods (§3.8, RFC 4754, RFC 7427).
public enum IKEAuthMethod {
    public static let rsaSignature: UInt8 = 1, sharedKey: UInt8 = 2
    public static let ecdsaP256: UInt8 = 9, ecdsaP384: UInt8 = 10, ecdsaP521: UInt8 = 11
    public static let digitalSignature: UInt8 = 14
    public static let signatures: Set<UInt8> = [rsaSignature, ecdsaP256, ecdsaP384, ecdsaP521, digitalSignature]
}

/// Hash algorithms of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4, IANA "IKEv2 Hash Algorithms").
public enum IKEHash: UInt16, Sendable, CaseIterable {
    case sha1 = 1, sha256 = 2, sha384 = 3, sha512 = 4

    var name: String { ["SHA1", "SHA256", "SHA384", "SHA512"][Int(rawValue) - 1] }
    var size: Int { [20, 32, 48, 64][Int(rawValue) - 1] }
    /// The OID's content octets.
    var oid: [UInt8] {
        switch self {
        case .sha1: return [0x2b, 0x0e, 0x03, 0x02, 0x1a]
        case .sha256: return [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
        case .sha384: return [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02]
        case .sha512: return [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03]
        }
    }
    /// sha*WithRSAEncryption (RFC 8017 Appendix C).
    var rsaOID: [UInt8] { [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, [0x05, 0x0b, 0x0c, 0x0d][Int(rawValue) - 1]] }
    /// ecdsa-with-SHA* (RFC 5758 §3.2; SHA-1: RFC 3279).
    var ecdsaOID: [UInt8] { rawValue == 1 ? [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] : [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, UInt8(rawValue)] }
    var evp: OpaquePointer? {
        switch self {
        case .sha1: return EVP_sha1()
        case .sha256: return EVP_sha256()
        case .sha384: return EVP_sha384()
        case .sha512: return EVP_sha512()
        }
    }
}

/// A signature scheme as RFC 7427's AlgorithmIdentifier names it.
public enum IKESignatureScheme: Equatable, Sendable {
    case rsaPKCS1(IKEHash)
    /// RSASSA-PSS with MGF1 over the same hash and `salt` bytes of salt (RFC 4055).
    case rsaPSS(IKEHash, salt: Int)
    /// ECDSA; the signature is DER's Ecdsa-Sig-Value (RFC 7427) or r | s (RFC 4754).
    case ecdsa(IKEHash)

    public var hash: IKEHash {
        switch self {
        case .rsaPKCS1(let h), .rsaPSS(let h, _), .ecdsa(let h): return h
        }
    }

    static let pssOID: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a]
    static let mgf1OID: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08]

    /// The DER AlgorithmIdentifier (RFC 7427 Appendix A's encodings: NULL parameters
    /// for PKCS#1 and for hashes, none for ECDSA).
    public var algorithmIdentifier: [UInt8] {
        switch self {
        case .rsaPKCS1(let h): return DER.sequence(DER.oid(h.rsaOID) + DER.null)
        case .ecdsa(let h): return DER.sequence(DER.oid(h.ecdsaOID))
        case .rsaPSS(let h, let salt):
            let hashID = DER.sequence(DER.oid(h.oid) + DER.null)
            let params = DER.element(0xa0, hashID) + DER.element(0xa1, DER.sequence(DER.oid(Self.mgf1OID) + hashID))
                + DER.element(0xa2, DER.integer(salt))
            return DER.sequence(DER.oid(Self.pssOID) + DER.sequence(params))
        }
    }

    /// The scheme an AlgorithmIdentifier names, nil for any other (or malformed DER).
    public init?(algorithmIdentifier bytes: [UInt8]) {
        guard let (outer, rest) = DER.read(bytes[...]), rest.isEmpty, outer.tag == 0x30,
              let (oid, paramBytes) = DER.read(outer.content), oid.tag == 0x06 else { return nil }
        let params = DER.read(paramBytes)
        // Parameters: absent, or exactly one element.
        guard paramBytes.isEmpty || params?.rest.isEmpty == true else { return nil }
        let absentOrNull = paramBytes.isEmpty || (params?.element.tag == 0x05 && params?.element.content.isEmpty == true)
        let o = Array(oid.content)
        for h in IKEHash.allCases {
            if o == h.rsaOID { guard absentOrNull else { return nil }; self = .rsaPKCS1(h); return }
            if o == h.ecdsaOID { guard paramBytes.isEmpty else { return nil }; self = .ecdsa(h); return }
        }
        guard o == Self.pssOID, let p = params?.element, p.tag == 0x30, let pss = Self.pssParameters(p.content) else { return nil }
        self = pss
    }

    /// RSASSA-PSS-params (RFC 4055 §3.1): [0] hash, [1] MGF1 with a hash, [2] salt
    /// length, [3] trailer 1; absent fields take their defaults (SHA-1, MGF1-SHA-1, 20).
    static func pssParameters(_ content: ArraySlice<UInt8>) -> IKESignatureScheme? {
        var hash = IKEHash.sha1, mgfHash = IKEHash.sha1, salt = 20
        var rest = content
        var lastTag: UInt8 = 0x9f
        while !rest.isEmpty {
            guard let (e, next) = DER.read(rest), (0xa0...0xa3).contains(e.tag), lastTag == 0x9f || e.tag > lastTag else { return nil }
            lastTag = e.tag
            rest = next
            guard let (inner, tail) = DER.read(e.content), tail.isEmpty else { return nil }
            switch e.tag {
            case 0xa0:
                guard let h = hashAlgorithm(inner) else { return nil }
                hash = h
            case 0xa1:
                guard inner.tag == 0x30, let (oid, p) = DER.read(inner.content), oid.tag == 0x06, Array(oid.content) == mgf1OID,
                      let (h, t) = DER.read(p), t.isEmpty, let mh = hashAlgorithm(h) else { return nil }
                mgfHash = mh
            case 0xa2:
                guard let n = DER.smallInteger(inner), n <= 512 else { return nil }
                salt = n
            default:
                guard DER.smallInteger(inner) == 1 else { return nil }
            }
        }
        guard mgfHash == hash else { return nil }
        return .rsaPSS(hash, salt: salt)
    }

    static func hashAlgorithm(_ e: DER.Element) -> IKEHash? {
        guard e.tag == 0x30, let (oid, p) = DER.read(e.content), oid.tag == 0x06 else { return nil }
        guard p.isEmpty || (p.count == 2 && p.first == 0x05 && p.last == 0x00) else { return nil }
        return IKEHash.allCases.first { $0.oid == Array(oid.content) }
    }
}

/// Just enough DER (X.690 §8, §10) for AlgorithmIdentifiers: definite lengths of up
/// to 4 bytes, single-byte tags. Every length is checked against what is there.
enum DER {
    struct Element {
        var tag: UInt8
        var content: ArraySlice<UInt8>
    }

    static func read(_ bytes: ArraySlice<UInt8>) -> (element: Element, rest: ArraySlice<UInt8>)? {
        var i = bytes.startIndex
        guard bytes.count >= 2 else { return nil }
        let tag = bytes[i]
        guard tag & 0x1f != 0x1f else { return nil }   // multi-byte tags: not here
        i += 1
        var length = Int(bytes[i])
        i += 1
        if length & 0x80 != 0 {
            let n = length & 0x7f
            guard (1...4).contains(n), bytes.endIndex - i >= n else { return nil }
            length = 0
            for _ in 0..<n { length = length << 8 | Int(bytes[i]); i += 1 }
        }
        guard length <= bytes.endIndex - i else { return nil }
        return (Element(tag: tag, content: bytes[i..<(i + length)]), bytes[(i + length)...])
    }

    static func element(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        let n = content.count
        var length: [UInt8]
        if n < 0x80 {
            length = [UInt8(n)]
        } else {
            length = []
            var v = n
            while v > 0 { length.insert(UInt8(v & 0xff), at: 0); v >>= 8 }
            length.insert(0x80 | UInt8(length.count), at: 0)
        }
        return [tag] + length + content
    }
    static func sequence(_ content: [UInt8]) -> [UInt8] { element(0x30, content) }
    static func oid(_ content: [UInt8]) -> [UInt8] { element(0x06, content) }
    static let null: [UInt8] = [0x05, 0x00]
    static func integer(_ v: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var n = v
        repeat { bytes.insert(UInt8(n & 0xff), at: 0); n >>= 8 } while n > 0
        if bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return element(0x02, bytes)
    }
    /// A non-negative INTEGER that fits in 4 bytes.
    static func smallInteger(_ e: Element) -> Int? {
        guard e.tag == 0x02, (1...5).contains(e.content.count), e.content.first! & 0x80 == 0 else { return nil }
        return e.content.reduce(0) { $0 << 8 | Int($1) }
    }
}

/// What a key is, as far as IKE's AUTH methods care.
public enum IKEKeyKind: Equatable, Sendable, CustomStringConvertible {
    case rsa(bits: Int)
    case ecdsa(curve: String)
    case other(String)

    /// The RFC 4754 method of an ECDSA key (9, 10, 11), nil for another key.
    public var ecdsaMethod: UInt8? {
        switch self {
        case .ecdsa("P-256"): return IKEAuthMethod.ecdsaP256
        case .ecdsa("P-384"): return IKEAuthMethod.ecdsaP384
        case .ecdsa("P-521"): return IKEAuthMethod.ecdsaP521
        default: return nil
        }
    }
    /// The hash RFC 4754 pairs with the curve (and encd-iked uses with RFC 7427).
    var curveHash: IKEHash? {
        switch ecdsaMethod {
        case IKEAuthMethod.ecdsaP256: return .sha256
        case IKEAuthMethod.ecdsaP384: return .sha384
        case IKEAuthMethod.ecdsaP521: return .sha512
        default: return nil
        }
    }
    /// Bytes of r and of s in an RFC 4754 signature.
    var scalarSize: Int? {
        switch ecdsaMethod {
        case IKEAuthMethod.ecdsaP256: return 32
        case IKEAuthMethod.ecdsaP384: return 48
        case IKEAuthMethod.ecdsaP521: return 66
        default: return nil
        }
    }
    public var description: String {
        switch self {
        case .rsa(let bits): return "RSA-\(bits)"
        case .ecdsa(let curve): return "ECDSA \(curve)"
        case .other(let name): return name
        }
    }
}

/// A public or private key (an EVP_PKEY).
public final class IKEKey: @unchecked Sendable {
    let pkey: OpaquePointer
    public let kind: IKEKeyKind
    public let isPrivate: Bool

    /// Takes over one reference to `pkey`.
    init(pkey: OpaquePointer, isPrivate: Bool) {
        self.pkey = pkey
        self.isPrivate = isPrivate
        switch EVP_PKEY_get_base_id(pkey) {
        case EVP_PKEY_RSA: kind = .rsa(bits: Int(EVP_PKEY_get_bits(pkey)))
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            var n = 0
            if EVP_PKEY_get_group_name(pkey, &name, name.count, &n) == 1 {
                let curve = String(decoding: name.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                // OpenSSL names P-256 "prime256v1", P-384 "secp384r1", P-521 "secp521r1".
                kind = .ecdsa(curve: ["prime256v1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"][curve] ?? curve)
            } else {
                kind = .ecdsa(curve: "?")
            }
        default:
            kind = .other(String(cString: EVP_PKEY_get0_type_name(pkey)))
        }
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A private key from PEM (PKCS#8 or the traditional RSA/EC forms) or DER.
    public convenience init(privateKey bytes: [UInt8]) throws(IKECryptoError) {
        var k: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            // A passphrase callback that gives none: OpenSSL's default would ask the
            // terminal for an encrypted key's passphrase, and a daemon would hang there.
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        if k == nil {
            k = bytes.withUnsafeBufferPointer { buf in
                var p: UnsafePointer<UInt8>? = buf.baseAddress
                return d2i_AutoPrivateKey(nil, &p, buf.count)
            }
        }
        ERR_clear_error()
        guard let k else { throw .malformed("not a PEM or DER private key (an encrypted one needs its passphrase removed: openssl pkey -in KEY -out local.key)") }
        self.init(pkey: k, isPrivate: true)
    }

    /// Whether both hold the same public key.
    public func samePublicKey(as other: IKEKey) -> Bool { EVP_PKEY_eq(pkey, other.pkey) == 1 }

    /// A signature over `data`: DER for ECDSA (RFC 7427), the raw value for RSA.
    public func sign(_ data: [UInt8], _ scheme: IKESignatureScheme) throws(IKECryptoError) -> [UInt8] {
        guard isPrivate else { throw .openssl("signing needs a private key") }
        guard let md = EVP_MD_CTX_new() else { throw .openssl("digest context") }
        defer { EVP_MD_CTX_free(md) }
        var pctx: OpaquePointer?
        guard EVP_DigestSignInit(md, &pctx, scheme.hash.evp, nil, pkey) == 1, let pctx, configure(pctx, scheme) else {
            ERR_clear_error()
            throw .openssl("\(kind) cannot sign with \(scheme)")
        }
        var n = 0
        guard EVP_DigestSign(md, nil, &n, data, data.count) == 1 else { throw .openssl("signature length") }
        var out = [UInt8](repeating: 0, count: n)
        guard EVP_DigestSign(md, &out, &n, data, data.count) == 1 else {
            ERR_clear_error()
            throw .openssl("signing with \(kind)")
        }
        return Array(out.prefix(n))
    }

    /// Whether `signature` (DER for ECDSA) is this key's over `data` with `scheme`.
    public func verify(_ signature: [UInt8], over data: [UInt8], _ scheme: IKESignatureScheme) -> Bool {
        guard let md = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(md); ERR_clear_error() }
        var pctx: OpaquePointer?
        guard EVP_DigestVerifyInit(md, &pctx, scheme.hash.evp, nil, pkey) == 1, let pctx, configure(pctx, scheme) else { return false }
        return EVP_DigestVerify(md, signature, signature.count, data, data.count) == 1
    }

    /// Whether the scheme fits the key, and PSS's padding and salt.
    func configure(_ ctx: OpaquePointer, _ scheme: IKESignatureScheme) -> Bool {
        switch (scheme, kind) {
        case (.rsaPKCS1, .rsa): return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1
        case (.rsaPSS(let h, let salt), .rsa):
            return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1
                && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, h.evp) == 1 && EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, Int32(salt)) == 1
        case (.ecdsa, .ecdsa): return true
        default: return false
        }
    }
}

/// The AUTH payload of a public-key method (§2.15: the key signs the same octets a
/// PSK's prf would).
public enum IKESignatureAuth {
    /// The method and data of our AUTH payload. `method`: what the policy asks for (1,
    /// 9, 10, 11 or 14), nil for "any": RFC 7427 when the peer announced a hash we can
    /// use, else the key's classic method. `peerHashes`: the peer's
    /// SIGNATURE_HASH_ALGORITHMS.
    public static func sign(_ octets: [UInt8], key: IKEKey, method: UInt8?, peerHashes: [IKEHash]) throws(IKECryptoError) -> (method: UInt8, data: [UInt8]) {
        let classic: UInt8? = key.kind.ecdsaMethod ?? (isRSA(key) ? IKEAuthMethod.rsaSignature : nil)
        let preferred: IKEHash = key.kind.curveHash ?? .sha256
        let chosen: UInt8
        if let method {
            chosen = method
        } else if peerHashes.contains(preferred) || (classic == nil && !peerHashes.isEmpty) {
            chosen = IKEAuthMethod.digitalSignature
        } else if let classic {
            chosen = classic
        } else {
            throw .openssl("\(key.kind) has no classic AUTH method and the peer announced no RFC 7427 hash")
        }
        switch chosen {
        case IKEAuthMethod.digitalSignature:
            let hash = peerHashes.isEmpty || peerHashes.contains(preferred) ? preferred
                : [IKEHash.sha256, .sha384, .sha512].first { peerHashes.contains($0) } ?? preferred
            let scheme: IKESignatureScheme = isRSA(key) ? .rsaPKCS1(hash) : .ecdsa(hash)
            let id = scheme.algorithmIdentifier
            return (chosen, [UInt8(id.count)] + id + (try key.sign(octets, scheme)))
        case IKEAuthMethod.rsaSignature:
            guard isRSA(key) else { throw .openssl("AUTH method 1 (RSA) with a \(key.kind) key") }
            return (chosen, try key.sign(octets, .rsaPKCS1(.sha1)))
        default:
            guard key.kind.ecdsaMethod == chosen, let size = key.kind.scalarSize, let hash = key.kind.curveHash else {
                throw .openssl("AUTH method \(chosen) with a \(key.kind) key")
            }
            let der = try key.sign(octets, .ecdsa(hash))
            guard let raw = rawECDSA(der, size: size) else { throw .openssl("ECDSA signature not DER") }
            return (chosen, raw)
        }
    }

    /// nil when `data` is the key's signature of `octets` with `method`, else why not.
    public static func verify(_ octets: [UInt8], key: IKEKey, method: UInt8, data: [UInt8]) -> String? {
        switch method {
        case IKEAuthMethod.digitalSignature:
            guard let n = data.first, data.count > 1 + Int(n) else { return "RFC 7427 AUTH data too short" }
            let id = Array(data[1..<(1 + Int(n))])
            guard let scheme = IKESignatureScheme(algorithmIdentifier: id) else {
                return "RFC 7427 signature algorithm not supported (\(Hex.encode(id)))"
            }
            guard scheme.hash != .sha1 else { return "RFC 7427 signature with SHA-1 refused (RFC 8247 §3.2)" }
            return key.verify(Array(data[(1 + Int(n))...]), over: octets, scheme) ? nil : "\(scheme) signature does not verify with the certificate's \(key.kind) key"
        case IKEAuthMethod.rsaSignature:
            guard isRSA(key) else { return "AUTH method 1 (RSA) but the certificate has a \(key.kind) key" }
            return key.verify(data, over: octets, .rsaPKCS1(.sha1)) ? nil : "RSA signature (method 1) does not verify"
        case IKEAuthMethod.ecdsaP256, IKEAuthMethod.ecdsaP384, IKEAuthMethod.ecdsaP521:
            guard key.kind.ecdsaMethod == method, let size = key.kind.scalarSize, let hash = key.kind.curveHash else {
                return "AUTH method \(method) (RFC 4754) but the certificate has a \(key.kind) key"
            }
            guard data.count == 2 * size, let der = derECDSA(data) else { return "ECDSA r|s of \(data.count) bytes (\(2 * size) expected)" }
            return key.verify(der, over: octets, .ecdsa(hash)) ? nil : "ECDSA signature (method \(method)) does not verify"
        default:
            return "AUTH method \(method) is not a signature method encd-iked knows"
        }
    }

    static func isRSA(_ key: IKEKey) -> Bool { if case .rsa = key.kind { true } else { false } }

    /// DER Ecdsa-Sig-Value -> r | s, each left-padded to `size` bytes.
    static func rawECDSA(_ der: [UInt8], size: Int) -> [UInt8]? {
        der.withUnsafeBufferPointer { buf -> [UInt8]? in
            var p: UnsafePointer<UInt8>? = buf.baseAddress
            guard let sig = d2i_ECDSA_SIG(nil, &p, buf.count) else { return nil }
            defer { ECDSA_SIG_free(sig) }
            var out = [UInt8](repeating: 0, count: 2 * size)
            guard let r = ECDSA_SIG_get0_r(sig), let s = ECDSA_SIG_get0_s(sig) else { return nil }
            let ok = out.withUnsafeMutableBufferPointer { o in
                BN_bn2binpad(r, o.baseAddress, Int32(size)) == Int32(size) && BN_bn2binpad(s, o.baseAddress! + size, Int32(size)) == Int32(size)
            }
            return ok ? out : nil
        }
    }

    /// r | s -> DER Ecdsa-Sig-Value.
    static func derECDSA(_ raw: [UInt8]) -> [UInt8]? {
        let half = raw.count / 2
        guard let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        guard let r = BN_bin2bn(raw, Int32(half), nil) else { return nil }
        guard let s = Array(raw[half...]).withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32(half), nil) }) else { BN_free(r); return nil }
        guard ECDSA_SIG_set0(sig, r, s) == 1 else { BN_free(r); BN_free(s); return nil }
        var p: UnsafeMutablePointer<UInt8>?
        let n = i2d_ECDSA_SIG(sig, &p)
        guard n > 0, let p else { return nil }
        defer { CRYPTO_free(p, nil, 0) }
        return Array(UnsafeBufferPointer(start: p, count: Int(n)))
    }
}
