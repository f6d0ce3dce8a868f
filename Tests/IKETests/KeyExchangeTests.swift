// Diffie-Hellman for IKEv2 against published vectors: RFC 7748 §6.1 (X25519) and
// RFC 5903 §8.1 (ECP-256: KE data x | y, secret x), both also checked with Python's
// cryptography package when the vectors were copied; fresh key pairs agree with each
// other for every group; hostile KE data is refused.

import Testing
@testable import IKECrypto

@Suite struct KeyExchangeTests {
    @Test func x25519MatchesRFC7748() throws {
        let alice = try IKEKeyPair(group: .curve25519, privateKey: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        #expect(alice.publicValue == hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(try alice.sharedSecret(peer: hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
                == hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"))
        // A low-order point gives an all-zero result: refused (RFC 8031 §2.3).
        #expect(throws: IKECryptoError.self) { try alice.sharedSecret(peer: [UInt8](repeating: 0, count: 32)) }
    }

    @Test func ecp256MatchesRFC5903() throws {
        let i = try IKEKeyPair(group: .ecp256, privateKey: hex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433"),
                               publicValue: hex("DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180" + "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"))
        #expect(i.publicValue == hex("DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180" + "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"))
        let gr = hex("D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63" + "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB")
        #expect(try i.sharedSecret(peer: gr) == hex("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE"))
        // Not a point of the curve: refused, as is the wrong length.
        var off = gr
        off[63] ^= 1
        #expect(throws: IKECryptoError.self) { try i.sharedSecret(peer: off) }
        #expect(throws: IKECryptoError.self) { try i.sharedSecret(peer: Array(gr.prefix(32))) }
    }

    @Test(arguments: IKEGroup.allCases)
    func freshPairsAgree(_ group: IKEGroup) throws {
        let a = try IKEKeyPair(group: group), b = try IKEKeyPair(group: group)
        #expect(a.publicValue.count == group.publicLength && a.publicValue != b.publicValue)
        let s = try a.sharedSecret(peer: b.publicValue)
        #expect(s == (try b.sharedSecret(peer: a.publicValue)))
        #expect(s.count == (group == .ecp384 ? 48 : 32))
    }
}
