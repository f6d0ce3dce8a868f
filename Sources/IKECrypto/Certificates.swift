// X.509 for encd-iked (RFC 7296 §3.5-§3.7, RFC 4945 §3 for the ID/certificate match),
// the role of iked's ca.c: certificates as values, a trust store of the configured CAs
// and CRLs, and the local credentials (our certificate, its issuers, our private key)
// read from one directory laid out as iked's /etc/iked:
//
//   DIR/ca/       trusted CA certificates (PEM, several per file, or DER)
//   DIR/crls/     CRLs of those CAs (PEM or DER), checked for every CA that has one
//   DIR/certs/    our certificate(s) and the intermediate CAs to send with them
//   DIR/private/local.key   our private key; refused when group or others may read it
//
// Control path only.

#if canImport(Glibc)
import Glibc
#endif
import CCrypto
import Crypto

/// Identity types (§3.5) a certificate can prove.
public enum IKEIDType {
    public static let ipv4: UInt8 = 1, fqdn: UInt8 = 2, rfc822: UInt8 = 3, ipv6: UInt8 = 5, derDN: UInt8 = 9, keyID: UInt8 = 11
}

/// DER from an i2d_ function (which allocates its output).
func derOf(_ encode: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>) -> Int32) -> [UInt8] {
    var p: UnsafeMutablePointer<UInt8>?
    let n = encode(&p)
    guard n > 0, let p else { return [] }
    defer { CRYPTO_free(p, nil, 0) }
    return Array(UnsafeBufferPointer(start: p, count: Int(n)))
}

/// Every PEM object `read` finds in `bytes` (several certificates in one file).
func pemObjects(_ bytes: [UInt8], _ read: (OpaquePointer) -> OpaquePointer?) -> [OpaquePointer] {
    bytes.withUnsafeBytes { raw in
        guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return [] }
        defer { BIO_free(bio) }
        var out: [OpaquePointer] = []
        while let x = read(bio) { out.append(x) }
        ERR_clear_error()   // the read that ended the loop
        return out
    }
}

public final class IKECertificate: @unchecked Sendable, CustomStringConvertible {
    let x509: OpaquePointer

    /// Takes over one reference.
    init(x509: OpaquePointer) { self.x509 = x509 }
    deinit { X509_free(x509) }

    /// One DER certificate (a CERT payload's data, encoding 4).
    public convenience init?(der: [UInt8]) {
        let x = der.withUnsafeBufferPointer { buf -> OpaquePointer? in
            var p: UnsafePointer<UInt8>? = buf.baseAddress
            guard let x = d2i_X509(nil, &p, buf.count) else { return nil }
            // The whole buffer, no trailing bytes.
            guard p == buf.baseAddress! + buf.count else { X509_free(x); return nil }
            return x
        }
        ERR_clear_error()
        guard let x else { return nil }
        self.init(x509: x)
    }

    /// Every certificate of a PEM file, or the one of a DER file.
    public static func certificates(in bytes: [UInt8]) -> [IKECertificate] {
        let pem = pemObjects(bytes) { PEM_read_bio_X509($0, nil, nil, nil) }.map(IKECertificate.init(x509:))
        if !pem.isEmpty { return pem }
        return IKECertificate(der: bytes).map { [$0] } ?? []
    }

    public var der: [UInt8] { derOf { i2d_X509(x509, $0) } }
    public var subjectDER: [UInt8] { derOf { i2d_X509_NAME(X509_get_subject_name(x509), $0) } }

    /// The subject as text, "O=encd, CN=gw1" (logs, ikectl).
    public var subject: String { Self.text(X509_get_subject_name(x509)) }
    public var description: String { subject }

    static func text(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "?" }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, ccrypto_xn_flags()) >= 0 else { return "?" }
        var p: UnsafeMutablePointer<CChar>?
        let n = ccrypto_bio_mem_data(bio, &p)
        guard n > 0, let p else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n).bindMemory(to: UInt8.self), as: UTF8.self)
    }

    /// A DER distinguished name (an ID_DER_ASN1_DN's data) as text, as `subject`.
    public static func distinguishedName(der: [UInt8]) -> String? {
        der.withUnsafeBufferPointer { buf -> String? in
            var p: UnsafePointer<UInt8>? = buf.baseAddress
            guard let name = d2i_X509_NAME(nil, &p, buf.count) else { ERR_clear_error(); return nil }
            defer { X509_NAME_free(name) }
            return text(name)
        }
    }

    /// "/O=encd/CN=gw1" (OpenSSL's form) or "O=encd, CN=gw1" (strongSwan's), attributes
    /// in the order written, as DER; nil when an attribute is unknown or empty.
    public static func distinguishedName(text: String) -> [UInt8]? {
        let parts: [Substring] = text.hasPrefix("/") ? text.dropFirst().split(separator: "/") : text.split(separator: ",")
        guard !parts.isEmpty, let name = X509_NAME_new() else { return nil }
        defer { X509_NAME_free(name); ERR_clear_error() }
        for part in parts {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { return nil }
            let key = String(kv[0]).trimmingSpaces, value = Array(String(kv[1]).trimmingSpaces.utf8)
            guard !key.isEmpty, !value.isEmpty,
                  X509_NAME_add_entry_by_txt(name, key, MBSTRING_UTF8, value, Int32(value.count), -1, 0) == 1 else { return nil }
        }
        return derOf { i2d_X509_NAME(name, $0) }
    }

    public var publicKey: IKEKey? {
        guard let k = X509_get_pubkey(x509) else { return nil }   // one reference for us
        return IKEKey(pkey: k, isPrivate: false)
    }

    /// SHA-1 of the SubjectPublicKeyInfo: what CERTREQ lists for a CA (§3.7).
    public var keyHash: [UInt8] {
        let spki = derOf { i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x509), $0) }
        var out = [UInt8](repeating: 0, count: 20)
        var n: UInt32 = 0
        guard EVP_Digest(spki, spki.count, &out, &n, EVP_sha1(), nil) == 1 else { return [] }
        return out
    }

    /// Whether `self` issued `other` (names, key identifiers and key usage; not the signature).
    func issued(_ other: IKECertificate) -> Bool { X509_check_issued(x509, other.x509) == X509_V_OK }
    var isSelfIssued: Bool { issued(self) }

    /// Whether the certificate proves the identity (§3.5, RFC 4945 §3.2): an address,
    /// an FQDN or an e-mail address in subjectAltName (no wildcards, never the subject's
    /// CN), or a DER distinguished name equal to the subject.
    public func proves(type: UInt8, data: [UInt8]) -> Bool {
        defer { ERR_clear_error() }
        switch type {
        case IKEIDType.ipv4 where data.count == 4, IKEIDType.ipv6 where data.count == 16:
            return X509_check_ip(x509, data, data.count, 0) == 1
        case IKEIDType.fqdn where !data.isEmpty:
            let flags = UInt32(X509_CHECK_FLAG_NEVER_CHECK_SUBJECT) | UInt32(X509_CHECK_FLAG_NO_WILDCARDS)
            return data.withUnsafeBytes { X509_check_host(x509, $0.baseAddress!.assumingMemoryBound(to: CChar.self), data.count, flags, nil) } == 1
        case IKEIDType.rfc822 where !data.isEmpty:
            return data.withUnsafeBytes { X509_check_email(x509, $0.baseAddress!.assumingMemoryBound(to: CChar.self), data.count, 0) } == 1
        case IKEIDType.derDN:
            return data.withUnsafeBufferPointer { buf -> Bool in
                var p: UnsafePointer<UInt8>? = buf.baseAddress
                guard let name = d2i_X509_NAME(nil, &p, buf.count) else { return false }
                defer { X509_NAME_free(name) }
                return p == buf.baseAddress! + buf.count && X509_NAME_cmp(name, X509_get_subject_name(x509)) == 0
            }
        default:
            return false
        }
    }
}

/// The CAs a peer's certificate must chain to, and their CRLs.
public final class IKETrustStore: @unchecked Sendable {
    public let authorities: [IKECertificate]
    public let crlCount: Int
    let store: OpaquePointer

    public init(authorities: [IKECertificate], crls: [[UInt8]] = []) throws(IKECryptoError) {
        guard let store = X509_STORE_new() else { throw .openssl("X509_STORE_new") }
        self.store = store
        self.authorities = authorities
        for ca in authorities where X509_STORE_add_cert(store, ca.x509) != 1 {
            ERR_clear_error()   // the same CA twice
        }
        var count = 0
        for file in crls {
            var objects = pemObjects(file) { PEM_read_bio_X509_CRL($0, nil, nil, nil) }
            if objects.isEmpty {
                let crl = file.withUnsafeBufferPointer { buf -> OpaquePointer? in
                    var p: UnsafePointer<UInt8>? = buf.baseAddress
                    return d2i_X509_CRL(nil, &p, buf.count)
                }
                ERR_clear_error()
                guard let crl else { throw .malformed("not a PEM or DER CRL") }
                objects = [crl]
            }
            for crl in objects {
                _ = X509_STORE_add_crl(store, crl)
                X509_CRL_free(crl)
                count += 1
            }
        }
        crlCount = count
        if count > 0 { ccrypto_store_use_crls(store) }
    }

    deinit { X509_STORE_free(store) }

    /// CERTREQ's data: the key hash of every CA (§3.7).
    public var certificateRequest: [UInt8] { authorities.flatMap(\.keyHash) }

    /// nil when `certificate` chains to one of the CAs through `intermediates` (the
    /// peer's other CERT payloads, untrusted), is valid at `time` (seconds since 1970,
    /// nil: now) and is not revoked by a CRL on file; else OpenSSL's reason.
    public func verify(_ certificate: IKECertificate, intermediates: [IKECertificate] = [], time: Int? = nil) -> String? {
        guard let ctx = X509_STORE_CTX_new() else { return "out of memory" }
        defer { X509_STORE_CTX_free(ctx); ERR_clear_error() }
        let chain = ccrypto_x509_stack_new()
        defer { ccrypto_x509_stack_free(chain) }
        for c in intermediates { _ = ccrypto_x509_stack_push(chain, c.x509) }
        guard X509_STORE_CTX_init(ctx, store, certificate.x509, chain) == 1 else { return "cannot set up the verification" }
        if let time { X509_STORE_CTX_set_time(ctx, 0, time_t(time)) }
        if X509_verify_cert(ctx) == 1 { return nil }
        let error = X509_STORE_CTX_get_error(ctx)
        return String(cString: X509_verify_cert_error_string(Int(error)))
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

public enum IKECredentialError: Error, Equatable, Sendable, CustomStringConvertible {
    case file(String, String)
    public var description: String {
        switch self {
        case .file(let path, let why): return "\(path): \(why)"
        }
    }
}

/// Our side of public-key authentication and the CAs we trust.
public final class IKECredentials: @unchecked Sendable {
    public let trust: IKETrustStore
    public let key: IKEKey?
    /// certs/: ours (those matching `key`) and the intermediates sent with them.
    public let certificates: [IKECertificate]
    public let directory: String

    public init(trust: IKETrustStore, key: IKEKey?, certificates: [IKECertificate], directory: String = "") {
        self.trust = trust
        self.key = key
        self.certificates = certificates
        self.directory = directory
    }

    /// The directory's CAs, CRLs, certificates and private key; absent parts are empty
    /// (a responder that only verifies needs no key of its own to start).
    public static func load(directory: String) throws(IKECredentialError) -> IKECredentials {
        func files(_ sub: String) throws(IKECredentialError) -> [(String, [UInt8])] {
            let dir = directory + "/" + sub
            guard let d = opendir(dir) else { return [] }
            defer { closedir(d) }
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if !name.hasPrefix(".") { names.append(name) }
            }
            var out: [(String, [UInt8])] = []
            for name in names.sorted() {
                let path = dir + "/" + name
                var st = stat()
                guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
                out.append((path, try read(path)))
            }
            return out
        }
        var cas: [IKECertificate] = []
        for (path, bytes) in try files("ca") {
            let found = IKECertificate.certificates(in: bytes)
            guard !found.isEmpty else { throw .file(path, "no certificate in it (PEM or DER expected)") }
            cas += found
        }
        var mine: [IKECertificate] = []
        for (path, bytes) in try files("certs") {
            let found = IKECertificate.certificates(in: bytes)
            guard !found.isEmpty else { throw .file(path, "no certificate in it (PEM or DER expected)") }
            mine += found
        }
        let crls = try files("crls")
        let trust: IKETrustStore
        do {
            trust = try IKETrustStore(authorities: cas, crls: crls.map(\.1))
        } catch {
            throw .file(directory + "/crls", "\(error)")
        }
        var key: IKEKey?
        let keyPath = directory + "/private/local.key"
        var st = stat()
        if stat(keyPath, &st) == 0 {
            guard st.st_mode & 0o077 == 0 else { throw .file(keyPath, "group or others may read the private key (chmod 600)") }
            var bytes = try read(keyPath)
            // The key's bytes do not outlive the parse (as Config's Files.read does for keys).
            defer { bytes.withUnsafeMutableBytes { if let p = $0.baseAddress { explicit_bzero(p, $0.count) } } }
            do {
                key = try IKEKey(privateKey: bytes)
            } catch {
                throw .file(keyPath, "not a private key: PEM or DER expected, without a passphrase (openssl pkey -in KEY -out local.key removes one)")
            }
        }
        return IKECredentials(trust: trust, key: key, certificates: mine, directory: directory)
    }

    static func read(_ path: String) throws(IKECredentialError) -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw .file(path, String(cString: strerror(errno))) }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        defer { buf.withUnsafeMutableBytes { if let p = $0.baseAddress { explicit_bzero(p, $0.count) } } }
        out.reserveCapacity(65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            out += buf.prefix(n)
            if n < buf.count { break }
            guard out.count < 1 << 24 else { throw .file(path, "larger than 16 MB") }
        }
        return out
    }

    /// Our certificate for `id` (type, data): the first one in certs/ with our private
    /// key's public half that proves it, or with no id the first with that key.
    public func certificate(proving id: (type: UInt8, data: [UInt8])?) -> IKECertificate? {
        guard let key else { return nil }
        return certificates.first { c in
            guard let pub = c.publicKey, pub.samePublicKey(as: key) else { return false }
            return id.map { c.proves(type: $0.type, data: $0.data) } ?? true
        }
    }

    /// The certificates to send after `certificate`: its issuers found in certs/, up
    /// to a self-signed one (which the peer must have; not sent).
    public func chain(for certificate: IKECertificate) -> [IKECertificate] {
        var out: [IKECertificate] = []
        var current = certificate
        while !current.isSelfIssued, out.count < 8,
              let issuer = certificates.first(where: { c in c !== current && !c.isSelfIssued && c.issued(current) && !out.contains { $0 === c } }) {
            out.append(issuer)
            current = issuer
        }
        return out
    }
}
