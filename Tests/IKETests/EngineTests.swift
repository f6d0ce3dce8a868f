// The exchanges (RFC 7296 §1.2, §1.4, §2.1, §2.6, §2.9, §2.15, §2.23) run between two
// engines over an in-memory wire that can drop datagrams and play a NAT: what each
// side installs into its (in-memory) encd must be the mirror of the other's, keys
// included, and every refusal must leave nothing installed.

import Crypto
import EncCore
import IKECrypto
import Testing
@testable import IKE

final class LogBox {
    var lines: [String] = []
}

/// Two engines and the wire between them.
final class IKEWire {
    static let a1 = IPAddress("203.0.113.1")!, a2 = IPAddress("203.0.113.2")!
    /// The address and ports gw1 appears from when `nat` is on.
    static let natAddress = IPAddress("198.51.100.7")!
    let gw1: IKEEngine, gw2: IKEEngine
    let be1 = InMemoryBackend(firstSPI: 0xc100_0000), be2 = InMemoryBackend(firstSPI: 0xc200_0000)
    var nat = false
    var now = 0.0
    /// Both engines' log lines.
    let logs = LogBox()
    /// Datagrams seen on the wire (after NAT), in order.
    var seen: [IKEDatagram] = []
    /// Return true to lose a datagram.
    var drop: (IKEDatagram) -> Bool = { _ in false }

    init(_ p1: IKEPolicy, _ p2: IKEPolicy, settings1: IKEEngineSettings = IKEEngineSettings(),
         settings2: IKEEngineSettings = IKEEngineSettings()) {
        let random: (Int) -> [UInt8] = { KeyFingerprint.randomBytes($0)! }
        let box = logs
        gw1 = IKEEngine(policies: [p1], backend: be1, settings: settings1, random: random, log: { box.lines.append("gw1: " + $0) })
        gw2 = IKEEngine(policies: [p2], backend: be2, settings: settings2, random: random, log: { box.lines.append("gw2: " + $0) })
    }

    init(policies1: [IKEPolicy], policies2: [IKEPolicy]) {
        let random: (Int) -> [UInt8] = { KeyFingerprint.randomBytes($0)! }
        gw1 = IKEEngine(policies: policies1, backend: be1, random: random)
        gw2 = IKEEngine(policies: policies2, backend: be2, random: random)
    }

    var local1: IKEEndpoint { IKEEndpoint(Self.a1, 500) }

    /// Delivers datagrams until none are left.
    func run(_ first: [IKEDatagram]) {
        var queue = first
        var steps = 0
        while !queue.isEmpty && steps < 100 {
            steps += 1
            let d = queue.removeFirst()
            if drop(d) { continue }
            if d.remote.address == Self.a2 {
                // gw1 -> gw2, source-NATed when `nat`.
                let source = nat ? IKEEndpoint(Self.natAddress, d.local.port == 500 ? 31000 : 31001) : d.local
                let arrived = IKEDatagram(local: d.remote, remote: source, bytes: d.bytes)
                seen.append(arrived)
                queue += gw2.receive(arrived, now: now)
            } else {
                var destination = d.remote
                if nat {
                    guard d.remote.address == Self.natAddress else { continue }
                    destination = IKEEndpoint(Self.a1, d.remote.port == 31000 ? 500 : 4500)
                }
                let arrived = IKEDatagram(local: destination, remote: d.local, bytes: d.bytes)
                seen.append(arrived)
                queue += gw1.receive(arrived, now: now)
            }
        }
    }

    func tick(_ seconds: Double) {
        now += seconds
        run(gw1.tick(now: now) + gw2.tick(now: now))
    }
}

@Suite struct EngineTests {
    static let psk = SecretKey(Array("correct horse battery staple".utf8))

    static func ike(_ encr: UInt16 = 20, bits: UInt16? = 256, integ: UInt16? = nil, prf: UInt16 = 5, dh: [UInt16] = [31]) -> IKEProposal {
        var t = [IKETransform(type: 1, id: encr, attributes: bits.map { [.keyLength($0)] } ?? [])]
        if let integ { t.append(IKETransform(type: 3, id: integ)) }
        t.append(IKETransform(type: 2, id: prf))
        t += dh.map { IKETransform(type: 4, id: $0) }
        return IKEProposal(number: 1, protocolID: 1, spi: [], transforms: t)
    }

    static func esp(_ encr: UInt16 = 20, bits: UInt16? = 128, integ: UInt16? = nil) -> IKEProposal {
        var t = [IKETransform(type: 1, id: encr, attributes: bits.map { [.keyLength($0)] } ?? [])]
        if let integ { t.append(IKETransform(type: 3, id: integ)) }
        t.append(IKETransform(type: 5, id: 0))
        return IKEProposal(number: 1, protocolID: 3, spi: [], transforms: t)
    }

    static func ts(_ s: String) -> IKETrafficSelector { IKETrafficSelector(prefix: IPPrefix(s)!) }

    /// gw1 (active, 198.18.1.0/24 <-> 198.18.2.0/24) and gw2 (passive, the mirror).
    static func pair(ike1: [IKEProposal] = [ike()], ike2: [IKEProposal] = [ike()], esp1: [IKEProposal] = [esp()],
                     esp2: [IKEProposal] = [esp()], psk2: SecretKey = psk,
                     remote2: [String] = ["198.18.1.0/24"], settings2: IKEEngineSettings = IKEEngineSettings()) -> IKEWire {
        var p1 = IKEPolicy(name: "site2", active: true, local: IKEWire.a1, peer: IKEWire.a2, ikeProposals: ike1, childProposals: esp1,
                           localSelectors: [ts("198.18.1.0/24")], remoteSelectors: [ts("198.18.2.0/24")], psk: psk)
        p1.localID = IKEIdentity("gw1.example.org")
        p1.peerID = IKEIdentity("gw2.example.org")
        var p2 = IKEPolicy(name: "site1", active: false, local: IKEWire.a2, peer: nil, ikeProposals: ike2, childProposals: esp2,
                           localSelectors: [ts("198.18.2.0/24")], remoteSelectors: remote2.map(ts), psk: psk2)
        p2.localID = IKEIdentity("gw2.example.org")
        p2.peerID = IKEIdentity("gw1.example.org")
        return IKEWire(p1, p2, settings2: settings2)
    }

    /// Each side's inbound SA is the other's outbound, with the same keys.
    static func expectMirrored(_ w: IKEWire) throws {
        let c1 = try #require(w.be1.installed.first), c2 = try #require(w.be2.installed.first)
        #expect(w.be1.installed.count == 1 && w.be2.installed.count == 1)
        #expect(c1.outboundSPI == c2.inboundSPI && c2.outboundSPI == c1.inboundSPI)
        #expect(c1.outboundEncryptionKey == c2.inboundEncryptionKey && c2.outboundEncryptionKey == c1.inboundEncryptionKey)
        #expect(c1.outboundIntegrityKey == c2.inboundIntegrityKey && c2.outboundIntegrityKey == c1.inboundIntegrityKey)
        #expect(c1.outboundEncryptionKey != c1.inboundEncryptionKey)
        #expect(c1.suite == c2.suite)
        #expect(c1.localSelectors == c2.remoteSelectors && c1.remoteSelectors == c2.localSelectors)
        #expect(c1.local == IKEWire.a1 && c1.peer == IKEWire.a2)
    }

    static func established(_ e: IKEEngine) -> [IKESession] { e.sessions.values.filter { $0.state == .established } }

    @Test func pskEstablishesMirroredChildSAs() throws {
        let w = Self.pair()
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(Self.established(w.gw1).count == 1 && Self.established(w.gw2).count == 1)
        try Self.expectMirrored(w)
        let c1 = try #require(w.be1.installed.first)
        #expect(c1.suite.encryption == "aes-128-gcm" && c1.suite.encryptionKeyLength == 20 && c1.inboundIntegrityKey == nil)
        #expect(c1.localSelectors == [Self.ts("198.18.1.0/24")] && c1.remoteSelectors == [Self.ts("198.18.2.0/24")])
        #expect(c1.udpEncapsulation == nil)
        #expect(c1.softSeconds >= 3 * 3600 * 85 / 100 && c1.softSeconds <= 3 * 3600 * 95 / 100)
        // Each side proved the identity the other was configured with.
        #expect(Self.established(w.gw1)[0].peerID == IKEIdentity("gw2.example.org"))
        #expect(Self.established(w.gw2)[0].peerID == IKEIdentity("gw1.example.org"))
        // Four messages: IKE_SA_INIT and IKE_AUTH, no more.
        #expect(w.seen.count == 4)
    }

    @Test func cbcWithHMACForBothSAs() throws {
        let w = Self.pair(ike1: [Self.ike(12, bits: 256, integ: 12, prf: 7, dh: [14])], ike2: [Self.ike(12, bits: 256, integ: 12, prf: 7, dh: [14])],
                          esp1: [Self.esp(12, bits: 256, integ: 13)], esp2: [Self.esp(12, bits: 256, integ: 13)])
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try Self.expectMirrored(w)
        let c1 = try #require(w.be1.installed.first)
        #expect(c1.suite.encryption == "aes-256" && c1.suite.integrity == "hmac-sha2-384" && c1.inboundIntegrityKey != nil)
        #expect(Self.established(w.gw1)[0].suite?.group == .modp2048)
    }

    @Test func responderNarrowsTheTraffic() throws {
        // gw2 allows only a /25 of what gw1 proposes.
        let w = Self.pair(remote2: ["198.18.1.0/25"])
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try Self.expectMirrored(w)
        #expect(w.be1.installed[0].localSelectors == [Self.ts("198.18.1.0/25")])
    }

    @Test func invalidKEPayloadRetriesWithTheResponderGroup() throws {
        // gw1 offers 19 and 31 and guesses 19; gw2 takes only 31 (§1.2).
        let w = Self.pair(ike1: [Self.ike(dh: [19, 31])], ike2: [Self.ike(dh: [31])])
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try Self.expectMirrored(w)
        #expect(Self.established(w.gw1)[0].suite?.group == .curve25519)
        #expect(w.seen.count == 6)
        // The responder kept no state for the refused request.
        #expect(w.gw2.sessions.count == 1)
    }

    @Test func cookieAboveTheHalfOpenThreshold() throws {
        var settings = IKEEngineSettings()
        settings.cookieThreshold = 0
        let w = Self.pair(settings2: settings)
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try Self.expectMirrored(w)
        // COOKIE answered, then the request again with COOKIE first (§2.6).
        let retry = try IKEMessage.decode(w.seen[2].bytes).get()
        guard case .notify(_, IKENotify.cookie, _, let cookie) = retry.payloads[0].body else {
            Issue.record("second IKE_SA_INIT does not begin with COOKIE"); return
        }
        #expect(cookie.count == 36)
        // A forged cookie gets only another cookie request, and no state.
        var forged = retry
        forged.header.initiatorSPI ^= 1
        let before = w.gw2.sessions.count
        let answer = w.gw2.receive(IKEDatagram(local: IKEEndpoint(IKEWire.a2, 500), remote: w.local1, bytes: forged.encode()), now: 0)
        #expect(answer.count == 1 && w.gw2.sessions.count == before)
    }

    @Test func wrongPSKInstallsNothing() throws {
        let w = Self.pair(psk2: SecretKey(Array("another secret".utf8)))
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(w.gw1.sessions.isEmpty && w.gw2.sessions.isEmpty)
        #expect(w.be1.installed.isEmpty && w.be2.installed.isEmpty)
    }

    @Test func wrongPeerIDIsRefused() throws {
        var p1 = Self.pair().gw1.policies[0]
        p1.localID = IKEIdentity("mallory.example.org")
        let p2 = Self.pair().gw2.policies[0]
        let w = IKEWire(p1, p2)
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(w.be2.installed.isEmpty && w.gw2.sessions.isEmpty && w.gw1.sessions.isEmpty)
    }

    @Test func unacceptableTrafficKeepsTheIKESA() throws {
        let w = Self.pair(remote2: ["198.18.9.0/24"])
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(Self.established(w.gw1).count == 1 && Self.established(w.gw2).count == 1)
        #expect(w.be1.installed.isEmpty && w.be2.installed.isEmpty)
    }

    @Test func noCommonChildProposal() throws {
        let w = Self.pair(esp2: [Self.esp(28, bits: nil)])
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(Self.established(w.gw1).count == 1 && w.be1.installed.isEmpty && w.be2.installed.isEmpty)
    }

    @Test func natFloatsTo4500AndEncapsulates() throws {
        let w = Self.pair()
        w.nat = true
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try Self.expectMirrored(w)
        let c1 = try #require(w.be1.installed.first), c2 = try #require(w.be2.installed.first)
        #expect(c1.udpEncapsulation?.local == 4500 && c1.udpEncapsulation?.peer == 4500)
        // gw2 sends to the NAT's mapping of gw1's 4500.
        #expect(c2.udpEncapsulation?.local == 4500 && c2.udpEncapsulation?.peer == 31001)
        #expect(c2.peer == IKEWire.natAddress)
        let s1 = Self.established(w.gw1)[0], s2 = Self.established(w.gw2)[0]
        #expect(s1.natLocal && !s1.natRemote && s2.natRemote && !s2.natLocal)
        // IKE_AUTH went over 4500 with the non-ESP marker.
        #expect(w.seen[2].local.port == 4500 && Array(w.seen[2].bytes.prefix(4)) == [0, 0, 0, 0])
    }

    @Test func lostMessagesAreRetransmittedAndAnsweredFromTheCache() throws {
        let w = Self.pair()
        var lost = 0
        // Lose the first IKE_SA_INIT response and the first IKE_AUTH response.
        w.drop = { d in
            guard d.remote.address == IKEWire.a1, lost < 2,
                  let m = try? IKEMessage.decode(d.local.port == 4500 ? Array(d.bytes.dropFirst(4)) : d.bytes).get(),
                  m.header.messageID == UInt32(lost) else { return false }
            lost += 1
            return true
        }
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        w.tick(1.9)
        #expect(lost == 1 && w.be2.installed.isEmpty)  // not before 2 s
        w.tick(0.2)  // IKE_SA_INIT again: the cached answer; IKE_AUTH is sent, its answer lost
        #expect(lost == 2 && w.be2.installed.count == 1 && w.be1.installed.isEmpty)
        w.tick(1.9)
        #expect(w.be1.installed.isEmpty)
        w.tick(0.2)  // IKE_AUTH again, 2 s after it was sent
        try Self.expectMirrored(w)
        // The responder answered the retransmitted IKE_AUTH from its cache: one CHILD SA.
        #expect(w.be2.allocated.count == 1)
    }

    @Test func deadPeerIsGivenUp() throws {
        let w = Self.pair()
        w.drop = { $0.remote.address == IKEWire.a2 }
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        var waited = 0.0
        while !w.gw1.sessions.isEmpty && waited < 600 {
            w.tick(1)
            waited += 1
        }
        // 2 + 4 + 8 + 16 + 32 + 64 s.
        #expect(w.gw1.sessions.isEmpty && waited >= 126 && waited <= 127)
    }

    @Test func deleteRemovesTheChildSAsOnBothSides() throws {
        let w = Self.pair()
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try Self.expectMirrored(w)
        let spi = try #require(w.gw1.sessions.keys.first)
        w.run(w.gw1.delete(spi, now: 1))
        #expect(w.gw1.sessions.isEmpty && w.gw2.sessions.isEmpty)
        #expect(w.be1.installed.isEmpty && w.be2.installed.isEmpty && w.be1.removed.count == 1 && w.be2.removed.count == 1)
        #expect(w.be1.bindings.isEmpty && w.be2.bindings.isEmpty)
    }

    @Test func requestForAnUnknownSPIGetsInvalidIKESPI() throws {
        let w = Self.pair()
        let h = IKEHeader(initiatorSPI: 7, responderSPI: 9, exchange: IKEExchangeType.informational, flags: IKEHeader.initiatorFlag, messageID: 3)
        let out = w.gw2.receive(IKEDatagram(local: IKEEndpoint(IKEWire.a2, 500), remote: w.local1,
                                            bytes: IKEMessage(header: h, payloads: []).encode()), now: 0)
        let m = try IKEMessage.decode(try #require(out.first).bytes).get()
        #expect(m.header.isResponse && m.payloads.count == 1)
        guard case .notify(_, IKENotify.invalidIKESPI, _, _) = m.payloads[0].body else { Issue.record("not INVALID_IKE_SPI"); return }
        // Never in answer to a response.
        var r = h
        r.flags = IKEHeader.responseFlag
        #expect(w.gw2.receive(IKEDatagram(local: IKEEndpoint(IKEWire.a2, 500), remote: w.local1,
                                          bytes: IKEMessage(header: r, payloads: []).encode()), now: 0).isEmpty)
    }

    @Test func selectorPrefixes() {
        #expect(Self.ts("198.18.1.0/24").prefixes == [IPPrefix("198.18.1.0/24")!])
        let odd = IKETrafficSelector(type: 7, ipProtocol: 0, startPort: 0, endPort: 0xffff, startAddress: [10, 0, 0, 1], endAddress: [10, 0, 0, 6])
        #expect(odd.prefixes.map(\.description) == ["10.0.0.1", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6"])
        #expect(Self.ts("2001:db8::/32").prefixes == [IPPrefix("2001:db8::/32")!])
        #expect(Self.ts("0.0.0.0/0").prefixes == [IPPrefix("0.0.0.0/0")!])
    }
}

/// CREATE_CHILD_SA (§1.3): CHILD rekeys in either role, with PFS, colliding; new CHILD
/// SAs; IKE SA rekeys that carry the CHILD SAs over; liveness.
@Suite struct CreateChildTests {
    typealias E = EngineTests

    static func up(esp: [IKEProposal] = [E.esp()]) throws -> IKEWire {
        let w = E.pair(esp1: esp, esp2: esp)
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try E.expectMirrored(w)
        return w
    }

    /// Each side has exactly `pairs` CHILD SAs installed, each the mirror of one of the other's.
    static func expectPairs(_ w: IKEWire, _ pairs: Int) {
        #expect(w.be1.installed.count == pairs && w.be2.installed.count == pairs)
        for c1 in w.be1.installed {
            let c2 = w.be2.installed.first { $0.inboundSPI == c1.outboundSPI }
            #expect(c2?.outboundSPI == c1.inboundSPI)
            #expect(c2?.inboundEncryptionKey == c1.outboundEncryptionKey && c2?.outboundEncryptionKey == c1.inboundEncryptionKey)
            #expect(w.be1.sas[c1.inboundSPI] == .sas)
        }
    }

    @Test(arguments: [false, true]) func rekeyReplacesThePairUnderItsBinding(byResponder: Bool) throws {
        let w = try Self.up()
        let old1 = w.be1.installed[0], old2 = w.be2.installed[0]
        let (engine, spi) = byResponder ? (w.gw2, old2.inboundSPI) : (w.gw1, old1.inboundSPI)
        w.run(engine.rekeyChild(spi: spi, now: 1))
        Self.expectPairs(w, 1)
        let new1 = w.be1.installed[0], new2 = w.be2.installed[0]
        #expect(new1.inboundSPI != old1.inboundSPI && new2.inboundSPI != old2.inboundSPI)
        #expect(new1.child == old1.child && new2.child == old2.child)
        #expect(new1.inboundEncryptionKey != old1.inboundEncryptionKey)
        #expect(w.be1.bindings == [old1.child] && w.be2.bindings == [old2.child])
        // The rekey initiator installs both new SAs at once; the responder its inbound SA,
        // then the outbound one when the old pair is deleted, before removing it.
        let (ini, res) = byResponder ? (w.be2, w.be1) : (w.be1, w.be2)
        let (iNew, rNew) = byResponder ? (new2, new1) : (new1, new2)
        let (iOld, rOld) = byResponder ? (old2, old1) : (old1, old2)
        #expect(Array(ini.calls.suffix(2)) == ["install 0x\(String(iNew.inboundSPI, radix: 16)) in,out",
                                              "remove 0x\(String(iOld.inboundSPI, radix: 16)) in,out"])
        #expect(Array(res.calls.suffix(3)) == ["install 0x\(String(rNew.inboundSPI, radix: 16)) in",
                                              "install 0x\(String(rNew.inboundSPI, radix: 16)) out",
                                              "remove 0x\(String(rOld.inboundSPI, radix: 16)) in,out"])
        // And again, over the new pair.
        w.run(w.gw1.rekeyChild(spi: new1.outboundSPI, now: 2))
        Self.expectPairs(w, 1)
        #expect(w.be1.installed[0].inboundSPI != new1.inboundSPI)
    }

    @Test func rekeyWithPFS() throws {
        let pfs = IKEProposal(number: 1, protocolID: 3, spi: [], transforms: E.esp().transforms + [IKETransform(type: 4, id: 19)])
        let w = try Self.up(esp: [pfs])
        #expect(w.be1.installed[0].suite.group == nil)  // no KE in IKE_AUTH
        w.run(w.gw1.rekeyChild(spi: w.be1.installed[0].inboundSPI, now: 1))
        Self.expectPairs(w, 1)
        #expect(w.be1.installed[0].suite.group == .ecp256 && w.be2.installed[0].suite.group == .ecp256)
    }

    @Test func simultaneousRekeysEndWithOnePair() throws {
        let w = try Self.up()
        let old1 = w.be1.installed[0]
        w.run(w.gw1.rekeyChild(spi: old1.inboundSPI, now: 1) + w.gw2.rekeyChild(spi: old1.outboundSPI, now: 1))
        // The request with the higher nonce went on, the other was refused: one new pair
        // at once, and nobody tries again later.
        Self.expectPairs(w, 1)
        #expect(w.be1.installed[0].inboundSPI != old1.inboundSPI)
        let pairs = (w.be1.calls.count, w.be2.calls.count)
        for _ in 0..<40 { w.tick(0.5) }
        #expect(w.be1.calls.count == pairs.0 && w.be2.calls.count == pairs.1)
    }

    @Test func aNewChildSAGetsItsOwnBinding() throws {
        let w = try Self.up()
        let spi = try #require(w.gw1.sessions.keys.first)
        w.run(w.gw1.newChild(spi, packet: (IPAddress("198.18.1.10")!, IPAddress("198.18.2.20")!), now: 1))
        Self.expectPairs(w, 2)
        #expect(w.be1.bindings.count == 2 && w.be2.bindings.count == 2)
    }

    @Test func simultaneousIKERekeysEndWithOneIKESA() throws {
        let w = try Self.up()
        let s1 = try #require(w.gw1.sessions.keys.first), s2 = try #require(w.gw2.sessions.keys.first)
        w.run(w.gw1.rekeyIKE(s1, now: 1) + w.gw2.rekeyIKE(s2, now: 1))
        #expect(w.gw1.sessions.count == 1 && w.gw2.sessions.count == 1 && w.gw1.sessions[s1] == nil && w.gw2.sessions[s2] == nil)
        Self.expectPairs(w, 1)
        w.run(w.gw1.rekeyChild(spi: w.be1.installed[0].inboundSPI, now: 2))
        Self.expectPairs(w, 1)
    }

    @Test func ikeRekeyMovesTheChildSAs() throws {
        let w = try Self.up()
        let old = try #require(w.gw1.sessions.keys.first)
        let calls1 = w.be1.calls.count, calls2 = w.be2.calls.count
        w.run(w.gw1.rekeyIKE(old, now: 1))
        #expect(w.gw1.sessions.count == 1 && w.gw2.sessions.count == 1 && w.gw1.sessions[old] == nil)
        let s1 = try #require(w.gw1.sessions.values.first), s2 = try #require(w.gw2.sessions.values.first)
        #expect(s1.state == .established && s2.state == .established && s1.isInitiator && !s2.isInitiator)
        #expect(s1.children.count == 1 && s2.children.count == 1)
        // encd saw nothing: the CHILD SAs stay as they are.
        #expect(w.be1.calls.count == calls1 && w.be2.calls.count == calls2)
        // The new IKE SA's keys work both ways: a CHILD rekey from each side over it.
        w.run(w.gw2.rekeyChild(spi: s2.children[0].inboundSPI, now: 2))
        Self.expectPairs(w, 1)
        w.run(w.gw1.rekeyChild(spi: w.be1.installed[0].inboundSPI, now: 3))
        Self.expectPairs(w, 1)
    }

    @Test func theIKESARekeysItselfBeforeItsLifetime() throws {
        let w = try Self.up()
        let old = try #require(w.gw1.sessions.keys.first)
        w.tick(4 * 3600 * 0.84)
        #expect(w.gw1.sessions[old] != nil)
        w.tick(4 * 3600 * 0.12)
        #expect(w.gw1.sessions[old] == nil && w.gw1.sessions.count == 1 && w.gw2.sessions.count == 1)
        Self.expectPairs(w, 1)
    }

    @Test func aDeadPeerFailsTheLivenessCheck() throws {
        let w = try Self.up()
        let spi = try #require(w.gw1.sessions.keys.first)
        w.drop = { $0.remote.address == IKEWire.a2 }
        w.run(w.gw1.checkLiveness(spi, now: 1))
        for _ in 0..<130 { w.tick(1) }
        #expect(w.gw1.sessions.isEmpty && w.be1.installed.isEmpty && w.be1.bindings.isEmpty)
    }

    @Test func aLivePeerAnswersTheLivenessCheck() throws {
        let w = try Self.up()
        let spi = try #require(w.gw1.sessions.keys.first)
        w.run(w.gw1.checkLiveness(spi, now: 1))
        for _ in 0..<130 { w.tick(1) }
        #expect(w.gw1.sessions.count == 1)
        Self.expectPairs(w, 1)
    }
}

@Suite struct EngineNATAndRestartTests {
    typealias E = EngineTests

    @Test func natKeepalivesOnlyFromBehindTheNAT() throws {
        let w = E.pair()
        w.nat = true
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try E.expectMirrored(w)
        w.seen = []
        for _ in 0..<41 { w.tick(1) }
        let keepalives = w.seen.filter { $0.bytes == [0xFF] }
        // gw1 is behind the NAT: two in 41 s, from its port 4500 (seen after NAT as 31001); gw2 sends none.
        #expect(keepalives.count == 2 && keepalives.allSatisfy { $0.remote.port == 31001 && $0.local.address == IKEWire.a2 })
    }

    @Test func encdLostItsSAsAndItsStateFile() throws {
        let w = try CreateChildTests.up()
        let old1 = w.be1.installed[0]
        // encd restarted without the records of these keys: re-adding them would start
        // their sequence numbers again at 1; they are renegotiated instead.
        w.be1.restart(keepRecords: false)
        w.run(w.gw1.encdLostSAs(now: 1))
        #expect(w.be1.calls.contains("reinstall 0x\(String(old1.inboundSPI, radix: 16)) refused"))
        // The peer deleted the old pair and has the new one; gw1 installed the new one whole.
        #expect(w.be2.installed.count == 1 && w.be2.installed[0].outboundSPI != old1.inboundSPI)
        let new1 = try #require(w.be1.installed.last)
        #expect(new1.inboundSPI != old1.inboundSPI && new1.child != old1.child)
        #expect(w.be2.installed[0].outboundSPI == new1.inboundSPI && w.be2.installed[0].inboundSPI == new1.outboundSPI)
        #expect(w.be1.calls.last == "install 0x\(String(new1.inboundSPI, radix: 16)) in,out,flows")
        #expect(w.gw1.sessions.values.first?.children.count == 1)
    }

    @Test func encdRestartedWithItsStateTheCHILDSAsGoBackAsTheyWere() throws {
        let w = try CreateChildTests.up()
        let old1 = w.be1.installed[0], peer = w.be2.installed[0]
        w.be1.restart()
        let sent = w.gw1.encdLostSAs(now: old1.installedAt + 600)
        // Nothing to negotiate: the same SAs and flows again, the peer untouched.
        #expect(sent.isEmpty)
        #expect(w.be1.installed.map(\.inboundSPI) == [old1.inboundSPI] && w.be1.bindings == [old1.child])
        // With what is left of its lifetimes: it still rekeys on time.
        #expect(w.be1.installed[0].hardSeconds == old1.hardSeconds - 600 && w.be1.installed[0].softSeconds == old1.softSeconds - 600)
        // Spent lifetimes: soft at once (a rekey), hard just after.
        let spent = old1.remaining(at: old1.installedAt + 1e7)
        #expect(spent.softSeconds == 1 && spent.hardSeconds == 2 && spent.hardBytes == old1.hardBytes)
        #expect(w.be1.calls.last == "reinstall 0x\(String(old1.inboundSPI, radix: 16)) in,out,flows")
        #expect(w.be2.installed.map(\.inboundSPI) == [peer.inboundSPI] && w.be2.removed.isEmpty)
        #expect(w.gw1.sessions.values.first?.children.map(\.inboundSPI) == [old1.inboundSPI])
    }
}

/// One IKE SA, several CHILD SAs: one per subnet pair, each under its own policy (as
/// vendor gateways negotiate them), both as initiator and as responder.
@Suite struct SharedIKESATests {
    typealias E = EngineTests

    static func policies(_ gw: Int, psk3: SecretKey = E.psk) -> [IKEPolicy] {
        let me = gw == 1 ? "198.18.1.0/24" : "198.18.2.0/24"
        let peerSites = gw == 1 ? ["198.18.2.0/24", "198.18.3.0/24"] : ["198.18.1.0/24", "198.18.4.0/24"]
        return peerSites.enumerated().map { i, site in
            var p = IKEPolicy(name: "gw\(gw)-\(i)", active: gw == 1, local: gw == 1 ? IKEWire.a1 : IKEWire.a2,
                              peer: gw == 1 ? IKEWire.a2 : IKEWire.a1, ikeProposals: [E.ike()], childProposals: [E.esp()],
                              localSelectors: [E.ts(me)], remoteSelectors: [E.ts(site)], psk: i == 1 ? psk3 : E.psk)
            p.localID = IKEIdentity("gw\(gw).example.org")
            p.peerID = IKEIdentity("gw\(3 - gw).example.org")
            return p
        }
    }

    @Test func aSecondSubnetPairGetsACHILDSAInTheSameIKESA() throws {
        // gw1: 198.18.1/24 to 198.18.2/24 and to 198.18.3/24; gw2 the mirror of both.
        var p2 = Self.policies(2)
        p2[1].localSelectors = [E.ts("198.18.3.0/24")]
        p2[1].remoteSelectors = [E.ts("198.18.1.0/24")]
        let w = IKEWire(policies1: Self.policies(1), policies2: p2)
        w.run(w.gw1.initiate("gw1-0", from: w.local1, now: 0))
        let s1 = try #require(w.gw1.sessions.values.first)
        w.run(w.gw1.newChild(s1.localSPI, policy: "gw1-1", now: 1))
        #expect(w.gw1.sessions.count == 1 && w.gw2.sessions.count == 1)
        CreateChildTests.expectPairs(w, 2)
        #expect(Set(w.be1.installed.map(\.policy)) == ["gw1-0", "gw1-1"] && Set(w.be2.installed.map(\.policy)) == ["gw2-0", "gw2-1"])
        let b = try #require(w.be1.installed.first { $0.policy == "gw1-1" })
        #expect(b.localSelectors == [E.ts("198.18.1.0/24")] && b.remoteSelectors == [E.ts("198.18.3.0/24")])
        // Rekeying the second CHILD SA keeps it under its policy.
        w.run(w.gw1.rekeyChild(spi: b.inboundSPI, now: 2))
        CreateChildTests.expectPairs(w, 2)
        #expect(Set(w.be2.installed.map(\.policy)) == ["gw2-0", "gw2-1"])
    }

    @Test func aPolicyWithAnotherKeyCannotShare() throws {
        let w = IKEWire(policies1: Self.policies(1, psk3: SecretKey(Array("other".utf8))), policies2: Self.policies(2))
        w.run(w.gw1.initiate("gw1-0", from: w.local1, now: 0))
        let s1 = try #require(w.gw1.sessions.values.first)
        #expect(w.gw1.childPolicies(s1).map(\.name) == ["gw1-0"])
        #expect(w.gw1.newChild(s1.localSPI, policy: "gw1-1", now: 1).isEmpty)
    }

    @Test func theResponderRefusesTrafficNoPolicyAllows() throws {
        let w = IKEWire(policies1: Self.policies(1), policies2: Self.policies(2))
        w.run(w.gw1.initiate("gw1-0", from: w.local1, now: 0))
        let s1 = try #require(w.gw1.sessions.values.first)
        // gw1's second pair (to 198.18.3/24) is no policy's at gw2: TS_UNACCEPTABLE, the IKE SA stays.
        w.run(w.gw1.newChild(s1.localSPI, policy: "gw1-1", now: 1))
        CreateChildTests.expectPairs(w, 1)
        #expect(w.gw1.sessions.count == 1 && w.gw1.sessions.values.first?.state == .established)
    }
}

@Suite struct OutsideAnSATests {
    typealias E = EngineTests

    @Test func unsupportedCriticalPayloadInIKESAInit() throws {
        let w = E.pair()
        let h = IKEHeader(initiatorSPI: 0x1122, responderSPI: 0, exchange: IKEExchangeType.ikeSAInit, flags: IKEHeader.initiatorFlag, messageID: 0)
        let m = IKEMessage(header: h, payloads: [IKEPayload(type: 200, critical: true, body: .raw([1, 2, 3]))])
        let out = w.gw2.receive(IKEDatagram(local: IKEEndpoint(IKEWire.a2, 500), remote: w.local1, bytes: m.encode()), now: 0)
        let answer = try IKEMessage.decode(try #require(out.first).bytes).get()
        #expect(answer.header.isResponse && answer.header.initiatorSPI == 0x1122 && answer.header.responderSPI == 0)
        guard case .notify(_, IKENotify.unsupportedCriticalPayload, _, let data) = answer.payloads.first?.body else {
            Issue.record("not UNSUPPORTED_CRITICAL_PAYLOAD"); return
        }
        #expect(data == [200] && w.gw2.sessions.isEmpty)
    }

    @Test func answersOutsideAnSAAreRateLimitedAndDropsCounted() {
        let w = E.pair()
        var answers = 0
        for i in 0..<25 {
            let h = IKEHeader(initiatorSPI: UInt64(i + 1), responderSPI: 9, exchange: IKEExchangeType.informational, flags: IKEHeader.initiatorFlag, messageID: 1)
            answers += w.gw2.receive(IKEDatagram(local: IKEEndpoint(IKEWire.a2, 500), remote: w.local1,
                                                 bytes: IKEMessage(header: h, payloads: []).encode()), now: 5.5).count
        }
        #expect(answers == 10)
        #expect(w.gw2.dropped["request for an unknown IKE SA"] == 25)
        for _ in 0..<3 { _ = w.gw2.receive(IKEDatagram(local: IKEEndpoint(IKEWire.a2, 500), remote: w.local1, bytes: [1, 2, 3]), now: 6) }
        #expect(w.gw2.dropped["undecodable message"] == 3 && w.gw2.dropped.count == 2)
    }
}

/// RFC 7383: fragments when both announced it, reassembly, retransmission of all
/// fragments, a forged fragment, and nothing fragmented when one side does not announce.
@Suite struct FragmentationTests {
    typealias E = EngineTests

    static func wire(fragmentSize: Int = 300, fragmentation2: Bool = true) -> IKEWire {
        var p1 = E.pair().gw1.policies[0], p2 = E.pair().gw2.policies[0]
        // Many selectors make IKE_AUTH large.
        p1.localSelectors = (0..<16).map { E.ts("198.18.1.\($0 * 16)/28") }
        p2.remoteSelectors = [E.ts("198.18.1.0/24")]
        var s1 = IKEEngineSettings(), s2 = IKEEngineSettings()
        s1.fragmentSize = fragmentSize
        s2.fragmentSize = fragmentSize
        s2.fragmentation = fragmentation2
        return IKEWire(p1, p2, settings1: s1, settings2: s2)
    }

    static func isFragment(_ d: IKEDatagram) -> Bool {
        let b = d.local.port == 4500 || d.remote.port == 4500 ? Array(d.bytes.dropFirst(4)) : d.bytes
        return b.count > 16 && b[16] == IKEPayloadType.skf
    }

    @Test func ikeAuthInFragmentsBothWays() throws {
        let w = Self.wire()
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try E.expectMirrored(w)
        let fragments = w.seen.filter(Self.isFragment)
        #expect(fragments.count >= 4)  // the request in several, the answer in at least one
        #expect(w.seen.allSatisfy { $0.bytes.count <= 300 })
        #expect(w.be1.installed[0].localSelectors.count == 16)
        // A CHILD rekey over fragments too.
        w.run(w.gw1.rekeyChild(spi: w.be1.installed[0].inboundSPI, now: 1))
        CreateChildTests.expectPairs(w, 1)
    }

    @Test func aLostFragmentMeansTheWholeMessageAgain() throws {
        let w = Self.wire()
        var lost = false
        w.drop = { d in
            guard !lost, d.remote.address == IKEWire.a2, Self.isFragment(d) else { return false }
            lost = true
            return true
        }
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(lost && w.be2.installed.isEmpty)
        w.tick(2.1)
        try E.expectMirrored(w)
    }

    @Test func aForgedFragmentIsDroppedAndCounted() throws {
        let w = Self.wire()
        var forged = 0
        w.drop = { d in
            guard forged == 0, d.remote.address == IKEWire.a2, Self.isFragment(d) else { return false }
            forged += 1
            var bad = d.bytes
            bad[bad.count - 1] ^= 1
            _ = w.gw2.receive(IKEDatagram(local: d.remote, remote: d.local, bytes: bad), now: 0)
            return true
        }
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(w.gw2.dropped["fragment that does not verify"] == 1 && w.be2.installed.isEmpty)
        w.tick(2.1)
        try E.expectMirrored(w)
    }

    @Test func noFragmentsUnlessBothAnnounced() throws {
        let w = Self.wire(fragmentation2: false)
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        try E.expectMirrored(w)
        #expect(!w.seen.contains(where: Self.isFragment))
    }
}

@Suite struct DeleteCollisionTests {
    typealias E = EngineTests

    /// §2.25: the responder deletes the pair the initiator is rekeying. Both end with the
    /// new pair alone, its flows bound and its outbound SA installed on both sides.
    @Test func aPairDeletedWhileBeingRekeyed() throws {
        let w = try CreateChildTests.up()
        let old1 = w.be1.installed[0]
        w.run(w.gw1.rekeyChild(spi: old1.inboundSPI, now: 1) + w.gw2.deleteChild(spi: old1.outboundSPI, now: 1))
        CreateChildTests.expectPairs(w, 1)
        #expect(w.be1.installed[0].inboundSPI != old1.inboundSPI)
        #expect(w.be1.bindings == [old1.child] && w.be2.bindings.count == 1)
        #expect(w.be2.sas[w.be2.installed[0].inboundSPI] == .sas)
        #expect(w.logs.lines.contains { $0.hasPrefix("gw1: ") && $0.contains("was deleted by the peer meanwhile") })
    }

    @Test func deletingOneChildSA() throws {
        let w = try CreateChildTests.up()
        w.run(w.gw2.deleteChild(spi: w.be2.installed[0].inboundSPI, now: 1))
        #expect(w.be1.installed.isEmpty && w.be2.installed.isEmpty && w.be1.bindings.isEmpty && w.be2.bindings.isEmpty)
        #expect(w.gw1.sessions.count == 1 && w.gw2.sessions.count == 1)
    }
}
