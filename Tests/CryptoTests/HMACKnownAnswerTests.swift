// Published HMAC vectors through the Authenticator that ESP and AH use.

import Testing
@testable import Crypto

@Suite struct HMACVectors {
    static let hiThere = ascii("Hi There")
    static let jefe = ascii("Jefe")
    static let whatDoYa = ascii("what do ya want for nothing?")

    // RFC 2202 §2 (HMAC-MD5) test cases 1, 2, 3 and 6.
    @Test func hmacMD5MatchesRFC2202() throws {
        #expect(try hmac(.md5, key: repeated(0x0b, 16), Self.hiThere, length: 16) == hex("9294727a3638bb1c13f48ef8158bfc9d"))
        #expect(try hmac(.md5, key: Self.jefe, Self.whatDoYa, length: 16) == hex("750c783e6ab0b503eaa86e310a5db738"))
        #expect(try hmac(.md5, key: repeated(0xaa, 16), repeated(0xdd, 50), length: 16) == hex("56be34521d144c88dbb8c733f0e8b3f6"))
        #expect(try hmac(.md5, key: repeated(0xaa, 80), ascii("Test Using Larger Than Block-Size Key - Hash Key First"),
                         length: 16) == hex("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"))
    }

    // RFC 2202 §3 (HMAC-SHA-1) test cases 1, 2, 3 and 6.
    @Test func hmacSHA1MatchesRFC2202() throws {
        #expect(try hmac(.sha1, key: repeated(0x0b, 20), Self.hiThere, length: 20) == hex("b617318655057264e28bc0b6fb378c8ef146be00"))
        #expect(try hmac(.sha1, key: Self.jefe, Self.whatDoYa, length: 20) == hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"))
        #expect(try hmac(.sha1, key: repeated(0xaa, 20), repeated(0xdd, 50), length: 20) == hex("125d7342b9ac11cd91a39af48aa17b4f63f175d3"))
        #expect(try hmac(.sha1, key: repeated(0xaa, 80), ascii("Test Using Larger Than Block-Size Key - Hash Key First"),
                         length: 20) == hex("aa4ae5e15272d00e95705637ce8a3b55ed402112"))
    }

    // RFC 2202 §3 test case 5 gives HMAC-SHA-1-96 (RFC 2404's truncation) explicitly.
    @Test func hmacSHA1TruncatesTo96BitsAsRFC2202Case5() throws {
        #expect(try hmac(.sha1, key: repeated(0x0c, 20), ascii("Test With Truncation"), length: 12)
                == hex("4c1a03424b55e07fe7f27be1"))
    }

    // RFC 2286 §2 (HMAC-RIPEMD160) test cases 1 and 2.
    @Test func hmacRIPEMD160MatchesRFC2286() throws {
        guard (try? Authenticator(digest: .ripemd160, key: SecretKey(repeated(1, 20)), icvLength: 20)) != nil else {
            return  // this OpenSSL has RIPEMD-160 in neither provider; the error path is tested elsewhere
        }
        #expect(try hmac(.ripemd160, key: repeated(0x0b, 20), Self.hiThere, length: 20) == hex("24cb4bd67d20fc1a5d2ed7732dcc39377f0a5668"))
        #expect(try hmac(.ripemd160, key: Self.jefe, Self.whatDoYa, length: 20) == hex("dda6c0213a485a9e24f4742064a7f033b43c4069"))
    }

    // RFC 4231 §4.2, §4.3 (test cases 1 and 2) for SHA-256, -384, -512.
    @Test func hmacSHA2MatchesRFC4231() throws {
        let k1 = repeated(0x0b, 20)
        #expect(try hmac(.sha256, key: k1, Self.hiThere, length: 32)
                == hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"))
        #expect(try hmac(.sha384, key: k1, Self.hiThere, length: 48)
                == hex("afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"))
        #expect(try hmac(.sha512, key: k1, Self.hiThere, length: 64)
                == hex("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"))
        #expect(try hmac(.sha256, key: Self.jefe, Self.whatDoYa, length: 32)
                == hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        #expect(try hmac(.sha384, key: Self.jefe, Self.whatDoYa, length: 48)
                == hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"))
        #expect(try hmac(.sha512, key: Self.jefe, Self.whatDoYa, length: 64)
                == hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"))
    }

    // RFC 4231 §4.6 (test case 5): output truncated to 128 bits.
    @Test func hmacSHA256TruncatesAsRFC4231Case5() throws {
        #expect(try hmac(.sha256, key: repeated(0x0c, 20), ascii("Test With Truncation"), length: 16)
                == hex("a3b6167473100ee06e0c796c2955552b"))
    }

    // RFC 4868 §2.7.2.1–2.7.2.3, Test Case AUTH256-1 / AUTH384-1 / AUTH512-1: keys of
    // the IPsec size, through the public init, truncated to the ESP/AH ICV length.
    @Test func ipsecTruncatedSHA2MatchesRFC4868AuthVectors() throws {
        func icv(_ name: String, _ keyBytes: [UInt8], _ data: [UInt8]) throws -> [UInt8] {
            let auth = try Authenticator(algorithm: IntegrityAlgorithm.named(name)!, key: SecretKey(keyBytes))
            auth.reset()
            data.withUnsafeBytes { auth.update($0) }
            var out = [UInt8](repeating: 0, count: auth.icvLength)
            #expect(out.withUnsafeMutableBytes { auth.finish(into: $0.baseAddress!) })
            return out
        }
        #expect(try icv("hmac-sha2-256", repeated(0x0b, 32), Self.hiThere) == hex("198a607eb44bfbc69903a0f1cf2bbdc5"))
        #expect(try icv("hmac-sha2-384", repeated(0x0b, 48), Self.hiThere) == hex("b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973"))
        #expect(try icv("hmac-sha2-512", repeated(0x0b, 64), Self.hiThere)
                == hex("637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8"))
        // AUTH256-2: the key "JefeJefe…" (32 bytes).
        #expect(try icv("hmac-sha2-256", ascii(String(repeating: "Jefe", count: 8)), Self.whatDoYa)
                == hex("167f928588c5cc2eef8e3093caa0e87c"))
    }

    @Test func verifyAcceptsTheRightICVAndRejectsAnyFlippedBit() throws {
        let auth = try Authenticator(algorithm: .defaultAuth, key: SecretKey(repeated(0x0b, 32)))
        let good = hex("198a607eb44bfbc69903a0f1cf2bbdc5")   // RFC 4868 AUTH256-1
        func verify(_ icv: [UInt8]) -> Bool {
            auth.reset()
            Self.hiThere.withUnsafeBytes { auth.update($0) }
            return icv.withUnsafeBytes { auth.verify($0.baseAddress!) }
        }
        #expect(verify(good))
        for bit in [0, 7, 64, 127] {
            var bad = good
            bad[bit / 8] ^= UInt8(1 << (bit % 8))
            #expect(!verify(bad), "bit \(bit)")
        }
        #expect(verify(good))   // the context is still usable after failures
    }

    @Test func authenticatorRefusesKeyOfWrongLength() {
        #expect(throws: CryptoError.self) {
            _ = try Authenticator(algorithm: IntegrityAlgorithm.named("hmac-sha1")!, key: SecretKey(repeated(1, 16)))
        }
        do {
            _ = try Authenticator(algorithm: IntegrityAlgorithm.named("hmac-sha2-512")!, key: SecretKey(repeated(1, 32)))
            Issue.record("a 256-bit key was accepted for hmac-sha2-512")
        } catch {
            #expect(error.kind == .keySize)
            #expect(error.description.contains("hmac-sha2-512 needs a 512-bit key"))
        }
    }
}
