// IKEv2 Diffie-Hellman (RFC 7296 §1.2, §2.12; transform type 4) through OpenSSL's EVP:
// X25519 (group 31, RFC 8031), ECP-256 and ECP-384 (groups 19 and 20, RFC 5903), and
// MODP-2048 (group 14, RFC 3526 §3) for the gateways that still need it.
// A new key pair for every exchange (§2.12: no reuse); the KE payload's data is the
// public value as RFC 8031 / RFC 5903 §7 encode it (X25519: 32 bytes; ECP: x | y,
// without the 0x04 of an uncompressed point); the shared secret is X25519's output
// (refused when all zero, RFC 8031 §2.3), the ECP point's x coordinate, or g^ir mod p
// padded to the prime's 256 bytes (§2.14: an unpadded secret would break one exchange
// in 256); MODP public values are padded the same way.

#if canImport(Glibc)
import Glibc
#endif
import CCrypto
import Crypto

public enum IKEGroup: UInt16, Sendable, CaseIterable {
    case modp2048 = 14, ecp256 = 19, ecp384 = 20, curve25519 = 31

    /// Bytes of the KE payload's data.
    public var publicLength: Int {
        switch self {
        case .modp2048: return 256
        case .curve25519: return 32
        case .ecp256: return 64
        case .ecp384: return 96
        }
    }
    var algorithm: String { self == .curve25519 ? "X25519" : self == .modp2048 ? "DH" : "EC" }
    var curve: String? {
        switch self {
        case .modp2048: return "modp_2048"
        case .curve25519: return nil
        case .ecp256: return "P-256"
        case .ecp384: return "P-384"
        }
    }
}

public final class IKEKeyPair {
    public let group: IKEGroup
    private let key: OpaquePointer

    /// A fresh key pair.
    public init(group: IKEGroup) throws(IKECryptoError) {
        self.group = group
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, group.algorithm, nil) else { throw .openssl("key context for group \(group.rawValue)") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1 else { throw .openssl("keygen init") }
        if let curve = group.curve {
            guard curve.withCString({ EVP_PKEY_CTX_set_group_name(ctx, $0) }) == 1 else { throw .openssl("curve \(curve)") }
        }
        var k: OpaquePointer?
        guard EVP_PKEY_generate(ctx, &k) == 1, let k else { throw .openssl("generate a key for group \(group.rawValue)") }
        key = k
    }

    /// A key pair from known values (tests with published vectors): the private key,
    /// and for ECP the public value (x | y) too.
    init(group: IKEGroup, privateKey: [UInt8], publicValue: [UInt8] = []) throws(IKECryptoError) {
        self.group = group
        if group == .curve25519 {
            guard let k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, privateKey, privateKey.count) else { throw .openssl("X25519 private key") }
            key = k
        } else {
            key = try Self.key(group, privateKey: privateKey, publicValue: publicValue)
        }
    }

    private init(group: IKEGroup, key: OpaquePointer) {
        self.group = group
        self.key = key
    }

    deinit { EVP_PKEY_free(key) }

    /// An EC or MODP key from its parts (the private key may be empty: a peer's public
    /// key). EC takes the point (0x04 | x | y) as an octet string, DH the value as a number.
    static func key(_ group: IKEGroup, privateKey: [UInt8], publicValue: [UInt8]) throws(IKECryptoError) -> OpaquePointer {
        let point = group == .modp2048 ? publicValue : [0x04] + publicValue
        guard let bld = OSSL_PARAM_BLD_new() else { throw .openssl("param builder") }
        defer { OSSL_PARAM_BLD_free(bld) }
        var priv: OpaquePointer?
        var pub: OpaquePointer?
        defer { if let priv { BN_clear_free(priv) }; if let pub { BN_free(pub) } }
        if group == .modp2048 {
            pub = BN_bin2bn(publicValue, Int32(publicValue.count), nil)
            guard let pub, OSSL_PARAM_BLD_push_BN(bld, ccrypto_param_pub_key(), pub) == 1 else { throw .openssl("DH public value") }
        }
        if !privateKey.isEmpty {
            priv = BN_bin2bn(privateKey, Int32(privateKey.count), nil)
            guard let priv, OSSL_PARAM_BLD_push_BN(bld, ccrypto_param_priv_key(), priv) == 1 else { throw .openssl("EC private key") }
        }
        // The builder keeps pointers to the names, the curve and the point until
        // to_param copies them: static names, and both calls inside the buffers' lifetimes.
        let curve = Array(group.curve!.utf8CString)
        let built: UnsafeMutablePointer<OSSL_PARAM>? = curve.withUnsafeBufferPointer { name in
            point.withUnsafeBufferPointer { pt in
                guard OSSL_PARAM_BLD_push_utf8_string(bld, ccrypto_param_group_name(), name.baseAddress, 0) == 1 else { return nil }
                if group != .modp2048 {
                    guard OSSL_PARAM_BLD_push_octet_string(bld, ccrypto_param_pub_key(), pt.baseAddress, pt.count) == 1 else { return nil }
                }
                return OSSL_PARAM_BLD_to_param(bld)
            }
        }
        guard let params = built else { throw .openssl("EC parameters") }
        defer { OSSL_PARAM_free(params) }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, group.algorithm, nil) else { throw .openssl("\(group.algorithm) context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var k: OpaquePointer?
        let selection = privateKey.isEmpty ? ccrypto_select_public_key() : ccrypto_select_keypair()
        guard EVP_PKEY_fromdata_init(ctx) == 1, EVP_PKEY_fromdata(ctx, &k, selection, params) == 1, let k else {
            throw .openssl("\(group.algorithm) key from its parts: \(CryptoError.opensslReason())")
        }
        return k
    }

    /// The KE payload's data.
    public var publicValue: [UInt8] {
        var out = [UInt8](repeating: 0, count: 1 + group.publicLength)
        var n = 0
        guard EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, &out, out.count, &n) == 1 else { return [] }
        switch group {
        case .curve25519: return Array(out.prefix(n))
        case .modp2048: return [UInt8](repeating: 0, count: max(0, group.publicLength - n)) + out.prefix(n)   // padded to 256
        default: return Array(out[1..<n])   // without 0x04
        }
    }

    /// g^ir from the peer's KE data: refused when its length is not the group's, when
    /// it is not a point of the curve, or (X25519) when the result is all zero.
    public func sharedSecret(peer: [UInt8]) throws(IKECryptoError) -> [UInt8] {
        guard peer.count == group.publicLength else { throw .malformed("KE data of \(peer.count) bytes for group \(group.rawValue) (\(group.publicLength) expected)") }
        let peerKey: OpaquePointer
        if group == .curve25519 {
            guard let k = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, peer, peer.count) else { throw .openssl("X25519 peer key") }
            peerKey = k
        } else {
            peerKey = try Self.key(group, privateKey: [], publicValue: peer)
        }
        defer { EVP_PKEY_free(peerKey) }
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else { throw .openssl("derive context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var n = 0
        guard EVP_PKEY_derive_init(ctx) == 1, group != .modp2048 || EVP_PKEY_CTX_set_dh_pad(ctx, 1) == 1,
              EVP_PKEY_derive_set_peer(ctx, peerKey) == 1, EVP_PKEY_derive(ctx, nil, &n) == 1 else {
            throw .malformed("the peer's KE data is not a valid public value of group \(group.rawValue)")
        }
        var out = [UInt8](repeating: 0, count: n)
        guard EVP_PKEY_derive(ctx, &out, &n) == 1 else { throw .malformed("key derivation with the peer's KE data failed") }
        out = Array(out.prefix(n))
        if group == .curve25519 && out.allSatisfy({ $0 == 0 }) { throw .malformed("X25519 result is all zero (RFC 8031 §2.3)") }
        return out
    }
}
