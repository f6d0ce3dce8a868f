// Diffie-Hellman for IKEv2 against published vectors: RFC 7748 §6.1 (X25519) and
// RFC 5903 §8.1 and §8.2 (ECP-256 and ECP-384: KE data x | y, secret x), checked with Python's
// cryptography package when the vectors were copied; MODP-2048 values computed with
// Python's integers over RFC 3526's prime, chosen so both the public value and the
// secret start with a zero byte; fresh key pairs agree for every group; hostile KE
// data is refused.

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

    @Test func ecp384MatchesRFC5903() throws {
        let gi = hex("793148F1787634D5DA4C6D9074417D05E057AB62F82054D10EE6B0403D6279547E6A8EA9D1FD77427D016FE27A8B8C66"
                     + "C6C41294331D23E6F480F4FB4CD40504C947392E94F4C3F06B8F398BB29E42368F7A685923DE3B67BACED214A1A1D128")
        let gr = hex("5CD42AB9C41B5347F74B8D4EFB708B3D5B36DB65915359B44ABC17647B6B9999789D72A84865AE2F223F12B5A1ABC120"
                     + "E171458FEAA939AAA3A8BFAC46B404BD8F6D5B348C0FA4D80CECA16356CA933240BDE8723415A8ECE035B0EDF36755DE")
        let girx = hex("5EA1FC4AF7256D2055981B110575E0A8CAE53160137D904C59D926EB1B8456E427AA8A4540884C37DE159A58028ABC0E")
        let i = try IKEKeyPair(group: .ecp384, privateKey: hex("D27335EA71664AF244DD14E9FD1260715DFD8A7965571C48D709EE7A7962A156D706A90CBCB5DF2986F05FEADB9376F1"),
                               publicValue: gi)
        let r = try IKEKeyPair(group: .ecp384, privateKey: hex("52D1791FDB4B70F89C0F00D456C2F7023B6125262C36A7DF1F80231121CCE3D39BE52E00C194A4132C4A6C768BCD94D2"),
                               publicValue: gr)
        #expect(i.publicValue == gi && r.publicValue == gr)
        #expect(try i.sharedSecret(peer: gr) == girx)
        #expect(try r.sharedSecret(peer: gi) == girx)
    }

    /// MODP-2048 (RFC 3526 §3) where the public value and the shared secret both start
    /// with a zero byte: each must still be 256 bytes (§2.14). Values computed with
    /// Python's integers over the RFC's prime.
    @Test func modp2048PadsPublicValueAndSecret() throws {
        let x = hex("4670805742727f2711a38ff9e846d3d158752145b1d1ff9201d3eae5aa5c32a14670805742727f2711a38ff9e846d3d158752145b1d1ff9201d3eae5aa5c32a1")
        let y = hex("004caf4e778bad59551635feb2525ca1d1ed852405b712cf6bd6a8c1d093121d631bf2c62b6218a31a45bb60e8cb5cec739b1f52853bcb589f5ec6552177c92602443a744c50283341bfab2e018939834a935b0d7829209882d02fd28c0b6189ddc7b7ead33c9084b3116f9f5efdf150fda474314a6bad748e1c3fbbe382f3a85a22e845be325f1c02f6e1ec91dcc32f2bd088f6cb14ba4e4c8a7609f6a8d547a7f5ca3c81756628cbd9df5456cfb405201332534b773debdc9b92fe8e537b101df5f6a6d3bec60a5652d0ee5c2c7a96e2582377de2687695307b2f29a5433fd38e029f80d295c6346511884fb098ad3b4b1eb4a4c85cb1a0f97b48e442425e7")
        let peer = hex("edf40ca892d0f280040669eae106a78f0495871cb5f0f7f1915e5544e5e85586377b6a6ffc8e1e3500c5e9022b17175490fea77c2ab0c740fa6791975f4c44b5bdcde634559849e555a2475ca636ba796d98e04f13662b4919d97614eb42e8b4a0243b2586a0b3333fdaf348f20956d3d749bba56f85e2cf2163f7c475ed43e8fafc77fde83873191dfcc4bdba986bd8629c708e3824d2767c5c5b77b764ad9fd9867ccaeca2bc65bc6fee8a06edcc692016b9347837fba57504d4ae9f1f66fac35e62f51dc76e51b44cf5076c06305de8afd99f950bcd3f418799623527871836fcc3ff0c0f0bca6c37c7e284c383659ab22b3ece8b684cda173e87242e37f0")
        let secret = hex("00d322ef4d92d2c3493ec3b1dfe36b5ee5c6ad3b4f5ab975a1a29f8ee0203739bff3c9c5231adf0410db06f39c13b35d3b3f71a067c89da03aee42f94f19566f737ecf5b0abeddbe412c909c7e6880d667484a53210e69896954ed5be2976f6554f003965365d3e6f754c0e8a3d99571be18618e9317bc01c8c998590937bfd0b8d691cb9c3f31af0ac11ccbcbe77ad101608ca74ad0fcf033a179e1658e92505a41ddb3394c3747d645f3dc97ff97aa19467f630e85c2e6fb9ed8bf24c12df3aa24d511c70eade0315365f03baefd952a411f8957e6323ab972d531905de5e002ec5db6f7ecf114bfcf0bf083ce17c60f4bb38e309aea553696de85d33a6e6e")
        let mine = try IKEKeyPair(group: .modp2048, privateKey: x, publicValue: y)
        #expect(mine.publicValue == y)
        #expect(try mine.sharedSecret(peer: peer) == secret)
        // 1 and p - 1 are refused (a peer forcing the secret).
        #expect(throws: IKECryptoError.self) { try mine.sharedSecret(peer: [UInt8](repeating: 0, count: 255) + [1]) }
    }

    @Test(arguments: IKEGroup.allCases)
    func freshPairsAgree(_ group: IKEGroup) throws {
        let a = try IKEKeyPair(group: group), b = try IKEKeyPair(group: group)
        #expect(a.publicValue.count == group.publicLength && a.publicValue != b.publicValue)
        let s = try a.sharedSecret(peer: b.publicValue)
        #expect(s == (try b.sharedSecret(peer: a.publicValue)))
        #expect(s.count == (group == .ecp384 ? 48 : group == .modp2048 ? 256 : 32))
    }
}
