// OpenSSL providers: the default provider (AES, ChaCha20-Poly1305, 3DES, SHA-1/2,
// MD5) and the legacy provider (Blowfish, CAST-128, and RIPEMD-160 on OpenSSL
// builds whose default provider lacks it). Loaded once per process, on first use,
// thread-safely (a Swift static is initialised exactly once under a lock).

import CCrypto

public enum CryptoProviders {
    private struct Loaded: @unchecked Sendable {
        let defaultProvider: OpaquePointer?
        let legacyProvider: OpaquePointer?
    }

    // Loading any provider explicitly stops OpenSSL from loading the default one
    // implicitly, so both are loaded here. The handles are kept for the process's
    // lifetime: unloading a provider under live contexts is undefined.
    private static let loaded: Loaded = {
        let d = OSSL_PROVIDER_load(nil, "default")
        let l = OSSL_PROVIDER_load(nil, "legacy")
        ERR_clear_error()   // a missing legacy.so leaves an error we report our own way
        return Loaded(defaultProvider: d, legacyProvider: l)
    }()

    /// Loads the providers if that has not happened yet. Cheap after the first call.
    public static func load() { _ = loaded }

    /// True when OpenSSL's default provider loaded (it always should).
    public static var isDefaultAvailable: Bool { loaded.defaultProvider != nil }

    /// True when OpenSSL's legacy provider loaded: Blowfish and CAST-128 need it.
    public static var isLegacyAvailable: Bool { loaded.legacyProvider != nil }
}
