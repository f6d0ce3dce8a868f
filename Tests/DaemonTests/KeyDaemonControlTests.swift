import Config
import Control
import EncCore
import Foundation
import IPsec
import Kernel
import Testing
@testable import Daemon

/// getspi, add and remove: what a key daemon (encd-iked) installs through the control
/// socket, owned apart from the configuration file (ctlSiteConf: gw1 192.0.2.1 to gw2
/// 192.0.2.2, SPIs 0x1000:0x1001).
@Suite struct KeyDaemonControlTests {
    static let keyOut = String(repeating: "a1", count: 20), keyIn = String(repeating: "b2", count: 20)

    /// A CHILD SA pair gw1 <-> gw2 and its flows, as encd-iked would add it.
    static func child(_ child: UInt32, out: UInt32, in spiIn: UInt32, keys: (String, String) = (keyOut, keyIn),
                      remote: String = "198.18.2.0/24") -> Request {
        let sas = [
            SAEntry(proto: "esp", source: "192.0.2.1", destination: "192.0.2.2", spi: out,
                    enc: "aes-128-gcm", encKey: keys.0, child: child),
            SAEntry(proto: "esp", source: "192.0.2.2", destination: "192.0.2.1", spi: spiIn,
                    enc: "aes-128-gcm", encKey: keys.1, child: child),
        ]
        let flows = [
            FlowEntry(direction: "out", source: "198.18.1.0/24", destination: remote, local: "192.0.2.1",
                      peer: "192.0.2.2", child: child),
            FlowEntry(direction: "in", source: remote, destination: "198.18.1.0/24", local: "192.0.2.1",
                      peer: "192.0.2.2", child: child),
        ]
        return Request(.add, owner: "encd-iked", sas: sas, flows: flows)
    }

    static let unrelatedConf = """
    flow esp from 198.18.1.0/24 to 198.18.9.0/24 local 192.0.2.1 peer 192.0.2.9
    esp tunnel from 192.0.2.1 to 192.0.2.9 spi 0x9000:0x9001 enc aes-128-gcm enckey \(ctlEncKey1):\(ctlEncKey2)

    """

    func outboundSPI(_ f: ControlFixture, to dst: String) -> UInt32? {
        if case .protect(_, let sa) = f.snapshot.spd.decideOutbound(
            Selector(source: IPAddress("198.18.1.5")!, destination: IPAddress(dst)!, proto: 17)) {
            return sa.key.spi
        }
        return nil
    }

    @Test func getspiReservesDistinctFreeSPIsAboveTheReservedRange() throws {
        let f = try ControlFixture(ctlSiteConf)
        var seen: Set<UInt32> = []
        for _ in 0..<20 {
            let r = try f.call(Request(.getspi, proto: "esp", destination: "192.0.2.1", source: "192.0.2.2"))
            #expect(r.ok)
            let spi = try #require(r.spi)
            #expect(spi >= 0x100)
            #expect(seen.insert(spi).inserted)
        }
        let bad = try f.call(Request(.getspi, proto: "esp", destination: "not-an-address"))
        #expect(!bad.ok && bad.error?.contains("getspi.destination") == true)
    }

    @Test func getspiSkipsSPIsInUseAndReservedAndForgetsAfterAMinute() throws {
        var state = KeyDaemonState()
        let dst = IPAddress("192.0.2.1")!
        var draws: [UInt32] = [0x1001, 0x7, 0x2222]
        let inUse: (SAKey) -> Bool = { $0.spi == 0x1001 }
        let spi = try state.reserveSPI(proto: .esp, destination: dst, inUse: inUse, now: 100, random: { draws.removeFirst() })
        #expect(spi == 0x2222)
        draws = [0x2222, 0x3333]
        #expect(try state.reserveSPI(proto: .esp, destination: dst, inUse: inUse, now: 159, random: { draws.removeFirst() }) == 0x3333)
        draws = [0x2222]
        #expect(try state.reserveSPI(proto: .esp, destination: dst, inUse: inUse, now: 160, random: { draws.removeFirst() }) == 0x2222)
    }

    @Test func addInstallsOwnedSAsAndFlowsBoundToTheirChild() throws {
        let f = try ControlFixture(Self.unrelatedConf)
        let r = try f.call(Self.child(7, out: 0x4000, in: 0x4001))
        #expect(r.ok, "\(r.error ?? "")")
        #expect(outboundSPI(f, to: "198.18.2.9") == 0x4000)
        let show = try f.call(Request(.show, what: "all"))
        let mine = show.sas?.filter { $0.owner == "encd-iked" } ?? []
        #expect(mine.map(\.spi).sorted() == [0x4000, 0x4001] && mine.allSatisfy { $0.child == 7 })
        #expect(mine.first { $0.spi == 0x4001 }?.replayWindow == 64)
        #expect(show.sas?.filter { $0.owner == nil }.map(\.spi).sorted() == [0x9000, 0x9001])
        #expect(show.flows?.filter { $0.child == 7 && $0.owner == "encd-iked" }.count == 2)
        let json = String(decoding: try JSONEncoder().encode(show), as: UTF8.self)
        #expect(!json.contains(Self.keyOut) && !json.contains(Self.keyIn))
    }

    @Test func aRekeyedPairTakesOverWhenItsOutboundSAIsAdded() throws {
        let f = try ControlFixture(Self.unrelatedConf)
        #expect(try f.call(Self.child(7, out: 0x5000, in: 0x5001)).ok)
        var rekey = Self.child(7, out: 0x4000, in: 0x4001, keys: (String(repeating: "c3", count: 20), String(repeating: "d4", count: 20)))
        rekey.flows = nil
        #expect(try f.call(rekey).ok)
        #expect(outboundSPI(f, to: "198.18.2.9") == 0x4000)
        // The old pair drains until it is removed; then it is gone and the new one stays.
        let rm = try f.call(Request(.remove, owner: "encd-iked", sas: [
            SAEntry(proto: "esp", destination: "192.0.2.2", spi: 0x5000),
            SAEntry(proto: "esp", destination: "192.0.2.1", spi: 0x5001)]))
        #expect(rm.ok, "\(rm.error ?? "")")
        #expect(f.snapshot.sad.count == 4 && outboundSPI(f, to: "198.18.2.9") == 0x4000)
    }

    @Test func addNeverReplacesAConfiguredSAAndChangesNothingOnAnyError() throws {
        let f = try ControlFixture(ctlSiteConf)
        let generation = f.snapshot.generation
        let collide = try f.call(Self.child(7, out: 0x1000, in: 0x4001))
        #expect(!collide.ok && collide.error?.contains("sas[0]") == true && collide.error?.contains("the configuration") == true)
        var short = Self.child(7, out: 0x4000, in: 0x4001)
        short.sas![1].encKey = String(repeating: "ab", count: 16)
        let bad = try f.call(short)
        #expect(!bad.ok && bad.error == "sas[1].encKey: aes-128-gcm needs 160 bits of key material, got 128 bits")
        var cbc = Self.child(7, out: 0x4000, in: 0x4001)
        cbc.sas![0].enc = "aes-128"
        cbc.sas![0].encKey = String(repeating: "ab", count: 16)
        #expect(try f.call(cbc).error == "sas[0].auth: aes-128 needs an integrity algorithm")
        var reserved = Self.child(7, out: 0x4000, in: 0x4001)
        reserved.sas![1].spi = 0xff
        #expect(try f.call(reserved).error?.hasPrefix("sas[1].spi: 255 is reserved") == true)
        var noOwner = Self.child(7, out: 0x4000, in: 0x4001)
        noOwner.owner = nil
        #expect(try f.call(noOwner).error?.contains("\"owner\" missing") == true)
        noOwner.owner = "config"
        #expect(try f.call(noOwner).ok == false)
        var twice = Self.child(7, out: 0x4000, in: 0x4001)
        twice.sas![1] = twice.sas![0]
        #expect(try f.call(twice).error?.contains("exists") == true)
        f.kernel.refuse = true
        let refused = try f.call(Self.child(7, out: 0x4000, in: 0x4001, remote: "198.18.5.0/24"))
        #expect(!refused.ok && refused.error?.contains("nothing changed") == true, "\(refused.error ?? "")")
        #expect(f.snapshot.generation == generation && f.snapshot.sad.count == 2)
    }

    @Test func reloadReplacesOnlyWhatTheFileOwns() throws {
        let f = try ControlFixture(ctlSiteConf)
        #expect(try f.call(Self.child(7, out: 0x4000, in: 0x4001, remote: "198.18.5.0/24")).ok)
        let negotiated = try #require(f.snapshot.sad.byKey[SAKey(destination: IPAddress("192.0.2.2")!, spi: 0x4000, proto: .esp)])
        try Self.unrelatedConf.write(toFile: f.confPath, atomically: true, encoding: .utf8)
        chmod(f.confPath, 0o600)
        let r = try f.call(Request(.reload))
        #expect(r.ok, "\(r.error ?? "")")
        let spis = f.snapshot.sad.all.map(\.key.spi).sorted()
        #expect(spis == [0x4000, 0x4001, 0x9000, 0x9001])
        // The very object, sequence numbers and counters and all.
        #expect(f.snapshot.sad.byKey[negotiated.key] === negotiated)
        #expect(f.snapshot.spd.flows.filter { $0.owner == "encd-iked" }.count == 2)
    }

    @Test func aFileThatWouldReplaceANegotiatedSAIsRefused() throws {
        let f = try ControlFixture(Self.unrelatedConf)
        #expect(try f.call(Self.child(7, out: 0x4000, in: 0x4001)).ok)
        let generation = f.snapshot.generation
        try (Self.unrelatedConf + "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x4000 enc aes-128-gcm enckey 0x\(String(repeating: "e5", count: 20))\n")
            .write(toFile: f.confPath, atomically: true, encoding: .utf8)
        chmod(f.confPath, 0o600)
        let r = try f.call(Request(.reload))
        #expect(!r.ok && r.error?.contains("is encd-iked's; the configuration cannot replace it") == true, "\(r.error ?? "") \(r.errors ?? [])")
        let load = try f.call(Request(.load, config: "flow esp out from 198.18.1.0/24 to 198.18.2.0/24 peer 192.0.2.2\n"))
        #expect(!load.ok && load.error?.contains("encd-iked's") == true)
        #expect(f.snapshot.generation == generation)
    }

    @Test func removeTakesOnlyTheOwnersAndRetiresTheSequenceSpaceAndKeys() throws {
        let f = try ControlFixture(ctlSiteConf)
        #expect(try f.call(Self.child(7, out: 0x4000, in: 0x4001, remote: "198.18.5.0/24")).ok)
        let out = try #require(f.snapshot.sad.byKey[SAKey(destination: IPAddress("192.0.2.2")!, spi: 0x4000, proto: .esp)])
        #expect(f.store.recordedEntry(out.spec) != nil)
        let configured = SAEntry(proto: "esp", destination: "192.0.2.2", spi: 0x1000)
        let notMine = try f.call(Request(.remove, owner: "encd-iked", sas: [configured]))
        #expect(!notMine.ok && f.snapshot.sad.count == 4)
        let other = try f.call(Request(.remove, owner: "someone-else", sas: [SAEntry(proto: "esp", destination: "192.0.2.2", spi: 0x4000)]))
        #expect(!other.ok && other.error?.contains("encd-iked's") == true)
        let r = try f.call(Request(.remove, owner: "encd-iked", sas: [
            SAEntry(proto: "esp", destination: "192.0.2.2", spi: 0x4000),
            SAEntry(proto: "esp", destination: "192.0.2.1", spi: 0x4001)], child: 7))
        #expect(r.ok, "\(r.error ?? "")")
        #expect(f.snapshot.sad.count == 2 && f.snapshot.spd.flows.count == 2)
        // Nothing of it stays in the store, and the same keys cannot come back.
        #expect(f.store.recordedEntry(out.spec) == nil)
        let again = try f.call(Self.child(7, out: 0x4100, in: 0x4101, remote: "198.18.5.0/24"))
        #expect(!again.ok && again.error?.contains("keys of a removed SA") == true)
        // The configuration's SAs keep their spaces when they go.
        let cfg = try #require(f.snapshot.sad.byKey[SAKey(destination: IPAddress("192.0.2.2")!, spi: 0x1000, proto: .esp)])
        #expect(try f.call(Request(.flush, what: "all")).ok)
        #expect(f.store.recordedEntry(cfg.spec) != nil)
    }

    @Test func flushRemovesEveryOwnersStateAndSaysSo() throws {
        let f = try ControlFixture(ctlSiteConf)
        #expect(try f.call(Self.child(7, out: 0x4000, in: 0x4001, remote: "198.18.5.0/24")).ok)
        let events = f.plane.bus.subscribe()
        let r = try f.call(Request(.flush, what: "sa"))
        #expect(r.ok && f.snapshot.sad.count == 0 && f.snapshot.spd.flows.count == 4)
        var kinds: [String] = []
        while let e = events.next(timeout: 0) { kinds.append(e.kind) }
        #expect(kinds.contains("flush") && kinds.filter { $0 == "sa-deleted" }.count == 4)
    }

    @Test func idleCountsFromTheLastTickThatSawAPacket() throws {
        let f = try ControlFixture(Self.unrelatedConf)
        #expect(try f.call(Self.child(7, out: 0x4000, in: 0x4001)).ok)
        let sa = try #require(f.snapshot.sad.byKey[SAKey(destination: IPAddress("192.0.2.2")!, spi: 0x4000, proto: .esp)])
        func idle() throws -> UInt64?? { try f.call(Request(.show, what: "sa")).sas?.first { $0.spi == 0x4000 }.map(\.idle) }
        #expect(try idle() == .some(nil))
        sa.counters.add(.packets)
        f.plane.tick(now: 1001)
        f.plane.tick(now: 1005)
        #expect(try idle() == .some(4))
        sa.counters.add(.packets)
        f.plane.tick(now: 1006)
        #expect(try idle() == .some(0))
    }
}

/// Events a key daemon reads: structured SA, flow and packet fields, a reason on
/// sa-deleted, and acquires limited per flow rather than per kind.
@Suite struct StructuredEventTests {
    @Test func twoFlowsNeedingSAsInOneSecondBothReachTheMonitorOnceEach() throws {
        let f = try ControlFixture(ctlSiteConf + ctlExtraConf)
        let sub = f.plane.bus.subscribe()
        let flows = f.snapshot.spd.flows.filter { $0.direction == .outbound }
        #expect(flows.count == 2)
        let sel = Selector(source: IPAddress("198.18.1.7")!, destination: IPAddress("198.18.2.9")!, proto: 6,
                           sourcePort: 40000, destinationPort: 443)
        let index = flows.map { fl in f.snapshot.spd.flows.firstIndex { $0 == fl }! }
        for _ in 0..<3 { for (fl, i) in zip(flows, index) { f.plane.events.acquire(flow: fl, index: i, packet: sel) } }
        var acquires: [Event] = []
        while let e = sub.next(timeout: 0) { acquires.append(e) }
        #expect(acquires.count == 2 && acquires.allSatisfy { $0.kind == "acquire" })
        #expect(Set(acquires.compactMap { $0.flow?.destination }) == ["198.18.2.0/24", "198.18.3.0/24"])
        let p = try #require(acquires.first?.packet)
        #expect(p == EventPacket(source: "198.18.1.7", destination: "198.18.2.9", proto: 6, sourcePort: 40000, destinationPort: 443))
        // The next second, the same flow again, with what was held back.
        f.clock.set(f.clock.now + 1)
        f.plane.events.acquire(flow: flows[0], index: index[0], packet: sel)
        let again = try #require(sub.next(timeout: 0))
        #expect(again.text.hasSuffix("(and 2 more since the last line)"))
    }

    @Test func flowsSharingASlotShareItsLimitInsteadOfFloodingTheMonitor() throws {
        // Flows 64 places apart share a slot: alternating between them must still give
        // one event per second, not one per packet.
        let f = try ControlFixture(ctlSiteConf)
        let sub = f.plane.bus.subscribe()
        let flow = f.snapshot.spd.flows[0]
        let sel = Selector(source: IPAddress("198.18.1.7")!, destination: IPAddress("198.18.2.9")!, proto: 1)
        for _ in 0..<5 { for i in [3, 67] { f.plane.events.acquire(flow: flow, index: i, packet: sel) } }
        var n = 0
        while sub.next(timeout: 0) != nil { n += 1 }
        #expect(n == 1)
    }

    @Test func saEventsNameTheSAItsOwnerChildAndWhyItWent() throws {
        let f = try ControlFixture(KeyDaemonControlTests.unrelatedConf)
        let sub = f.plane.bus.subscribe()
        #expect(try f.call(KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)).ok)
        var added: [Event] = []
        while let e = sub.next(timeout: 0) { added.append(e) }
        #expect(added.map(\.kind) == ["sa-added", "sa-added"])
        #expect(added.compactMap(\.sa).map { "\($0.direction) \($0.spi) \($0.owner ?? "-") \($0.child ?? 0)" }.sorted()
                == ["in 16385 encd-iked 7", "out 16384 encd-iked 7"])
        #expect(try f.call(Request(.remove, owner: "encd-iked", sas: [SAEntry(proto: "esp", destination: "192.0.2.2", spi: 0x4000)])).ok)
        let gone = try #require(sub.next(timeout: 0))
        #expect(gone.kind == "sa-deleted" && gone.reason == "remove" && gone.sa?.spi == 0x4000 && gone.sa?.source == "192.0.2.1")
        #expect(try f.call(Request(.flush, what: "sa")).ok)
        var flushed: [Event] = []
        while let e = sub.next(timeout: 0) { flushed.append(e) }
        #expect(flushed.filter { $0.kind == "sa-deleted" }.allSatisfy { $0.reason == "flush" })
        #expect(flushed.filter { $0.kind == "sa-deleted" }.count == 3)
        // No key in any event.
        let json = String(decoding: try JSONEncoder().encode(added + [gone] + flushed), as: UTF8.self)
        #expect(!json.contains(KeyDaemonControlTests.keyOut) && !json.contains(KeyDaemonControlTests.keyIn))
    }
}

/// `update`: a NAT rebound moves a key daemon's NAT-T SAs to the peer's new address and
/// port, keeping the SA objects (sequence numbers, replay windows, counters).
@Suite struct KeyDaemonUpdateTests {
    static func natChild() -> Request {
        var r = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        for i in r.sas!.indices { r.sas![i].udpencap = UDPEncapEntry(port: 4500, peerPort: 4500) }
        return r
    }
    static let pair = [SAEntry(proto: "esp", destination: "192.0.2.2", spi: 0x4000),
                       SAEntry(proto: "esp", destination: "192.0.2.1", spi: 0x4001)]

    @Test func aNATReboundMovesTheOutboundSAAndKeepsItsState() throws {
        let f = try ControlFixture(KeyDaemonControlTests.unrelatedConf)
        #expect(try f.call(Self.natChild()).ok)
        let key = SAKey(destination: IPAddress("192.0.2.2")!, spi: 0x4000, proto: .esp)
        let out = try #require(f.snapshot.sad.byKey[key])
        out.counters.add(.packets, 5)
        let generation = f.snapshot.generation
        let r = try f.call(Request(.update, owner: "encd-iked", sas: Self.pair, peer: "203.0.113.9", peerPort: 31000))
        #expect(r.ok, "\(r.error ?? "")")
        #expect(f.snapshot.sad.byKey[key] === out && f.snapshot.generation == generation)
        let (addr, port) = out.natEndpoint()
        #expect(addr == IPAddress("203.0.113.9") && port == 31000)
        let shown = try f.call(Request(.show, what: "sa")).sas?.first { $0.spi == 0x4000 }
        #expect(shown?.natPeer == "203.0.113.9:31000" && shown?.packets == 5)
        // The port alone: the address stays where it was moved.
        #expect(try f.call(Request(.update, owner: "encd-iked", sas: [Self.pair[0]], peerPort: 31001)).ok)
        #expect(out.natEndpoint().0 == IPAddress("203.0.113.9") && out.natEndpoint().1 == 31001)
    }

    @Test func onlyTheOwnersNATTSAsMove() throws {
        let f = try ControlFixture(ctlSiteConf)
        #expect(try f.call(KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001, remote: "198.18.5.0/24")).ok)
        let plain = try f.call(Request(.update, owner: "encd-iked", sas: [Self.pair[0]], peerPort: 31000))
        #expect(plain.error == "sas[0]: SA esp spi 0x4000 to 192.0.2.2 is not UDP-encapsulated: only a NAT-T SA's peer can move")
        let other = try f.call(Request(.update, owner: "someone", sas: [Self.pair[0]], peerPort: 31000))
        #expect(other.error?.contains("encd-iked's") == true)
        let configured = try f.call(Request(.update, owner: "encd-iked", sas: [SAEntry(proto: "esp", destination: "192.0.2.2", spi: 0x1000)], peerPort: 31000))
        #expect(configured.error?.contains("no SA") == true)
        let nothing = try f.call(Request(.update, owner: "encd-iked", sas: [Self.pair[0]]))
        #expect(nothing.error == "update needs \"peer\" and/or \"peerPort\"")
    }
}

/// What a key daemon needs after an encd restart: `status` names the instance, and
/// `add` answers with the SAs as they start, so the daemon sees whether their sequence
/// numbers continue above what the state file recorded for the same keys.
@Suite struct KeyDaemonRestartTests {
    @Test func addSaysWhetherTheKeysSequenceNumbersContinue() throws {
        let f = try ControlFixture(KeyDaemonControlTests.unrelatedConf)
        let request = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        // The state file remembers the outbound key up to 1000 (an earlier encd used it).
        let spec = try KeyDaemonEntries.sa(request.sas![0], "sas[0]", owner: "encd-iked")
        let claim = f.store.claim(spec, .outbound)
        #expect(f.store.reserve(claim, through: 1000))
        let r = try f.call(request)
        #expect(r.ok, "\(r.error ?? "")")
        let out = try #require(r.sas?.first { $0.spi == 0x4000 }), inb = try #require(r.sas?.first { $0.spi == 0x4001 })
        #expect(out.sequence == 1001 && out.owner == "encd-iked")
        #expect(inb.sequence == 0)
        let json = String(decoding: try JSONEncoder().encode(r), as: UTF8.self)
        #expect(!json.contains(KeyDaemonControlTests.keyOut))
    }

    /// continueOnly: the SAs go in only when the state file recorded both SAs' keys in
    /// the direction each takes here; otherwise nothing is added.
    @Test func continueOnlyAddsOnlyKeysTheStateRecorded() throws {
        let f = try ControlFixture(KeyDaemonControlTests.unrelatedConf)
        var request = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        request.continueOnly = true
        let out = try KeyDaemonEntries.sa(request.sas![0], "sas[0]", owner: "encd-iked")
        let inb = try KeyDaemonEntries.sa(request.sas![1], "sas[1]", owner: "encd-iked")
        let generation = f.snapshot.generation, count = f.snapshot.sad.count
        // Keys the state never saw (a lost state file looks the same): refused.
        let fresh = try f.call(request)
        #expect(!fresh.ok && fresh.error?.contains("sas[0]: SA") == true && fresh.error?.contains("no record") == true,
                "\(fresh.error ?? "")")
        // Only the outbound SA's keys recorded: still refused, naming the inbound one.
        #expect(f.store.reserve(f.store.claim(out, .outbound), through: 1000))
        let half = try f.call(request)
        #expect(!half.ok && half.error?.contains("sas[1]: SA") == true, "\(half.error ?? "")")
        // Neither refusal changed anything.
        #expect(f.snapshot.generation == generation && f.snapshot.sad.count == count)
        #expect(f.store.reserve(f.store.claim(inb, .inbound), through: 50))
        let r = try f.call(request)
        #expect(r.ok, "\(r.error ?? "")")
        #expect(r.sas?.first { $0.spi == 0x4000 }?.sequence == 1001)
        #expect(r.sas?.first { $0.spi == 0x4001 }?.sequence == 50)
        // Without continueOnly, unrecorded keys are taken (and start afresh).
        let other = KeyDaemonControlTests.child(8, out: 0x5000, in: 0x5001,
                                                keys: (String(repeating: "c3", count: 20), String(repeating: "d4", count: 20)),
                                                remote: "198.18.3.0/24")
        let plain = try f.call(other)
        #expect(plain.ok && plain.sas?.first { $0.spi == 0x5000 }?.sequence == 1, "\(plain.error ?? "")")
    }

    /// An SA that never carried a packet was settled at 0 on a clean stop: its record
    /// proves the keys are known, and it continues from 1.
    @Test func continueOnlyTakesKeysRecordedAtZero() throws {
        let f = try ControlFixture(KeyDaemonControlTests.unrelatedConf)
        var request = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        request.continueOnly = true
        let out = try KeyDaemonEntries.sa(request.sas![0], "sas[0]", owner: "encd-iked")
        let inb = try KeyDaemonEntries.sa(request.sas![1], "sas[1]", owner: "encd-iked")
        #expect(f.store.settle(f.store.claim(out, .outbound), at: 0))
        #expect(f.store.settle(f.store.claim(inb, .inbound), at: 0))
        #expect(f.store.recorded(out, .outbound) == 0 && f.store.recorded(inb, .inbound) == 0)
        let r = try f.call(request)
        #expect(r.ok, "\(r.error ?? "")")
        #expect(r.sas?.first { $0.spi == 0x4000 }?.sequence == 1)
    }

    @Test func statusNamesTheInstance() throws {
        let a = try ControlFixture(ctlSiteConf), b = try ControlFixture(ctlSiteConf)
        let ia = try #require(try a.call(Request(.status)).status?["instance"])
        let again = try a.call(Request(.status)).status?["instance"]
        let other = try b.call(Request(.status)).status?["instance"]
        #expect(ia.count == 16 && ia == again && ia != other)
    }
}

/// Every field a key daemon sends is checked, and a bad one is named in the error.
@Suite struct KeyDaemonBadInputTests {
    func error(_ f: ControlFixture, _ r: Request) throws -> String? {
        let resp = try f.call(r)
        #expect(!resp.ok)
        return resp.error
    }

    @Test func badFlowAndSAFieldsAreNamedAndChangeNothing() throws {
        let f = try ControlFixture(KeyDaemonControlTests.unrelatedConf)
        let generation = f.snapshot.generation
        func withFlow(_ change: (inout FlowEntry) -> Void) -> Request {
            var r = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
            change(&r.flows![1])
            return r
        }
        #expect(try error(f, withFlow { $0.direction = "sideways" }) == "flows[1].direction: expected \"in\" or \"out\"")
        #expect(try error(f, withFlow { $0.source = "198.18.2.1/24" })?.hasPrefix("flows[1].source: \"198.18.2.1/24\" is not") == true)
        #expect(try error(f, withFlow { $0.destinationPort = 80 })?.hasPrefix("flows[1]: ports need upperProtocol") == true)
        #expect(try error(f, withFlow { $0.type = "maybe" })?.hasPrefix("flows[1].type: expected one of") == true)
        #expect(try error(f, withFlow { $0.peer = "gw2" }) == "flows[1].peer: \"gw2\" is not an IPv4 or IPv6 address")
        var ah = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        ah.sas![0] = SAEntry(proto: "ah", source: "192.0.2.1", destination: "192.0.2.2", spi: 0x4000,
                             auth: "hmac-sha2-256", authKey: String(repeating: "ab", count: 32),
                             udpencap: UDPEncapEntry(port: 4500))
        #expect(try error(f, ah) == "sas[0]: ah cannot be UDP-encapsulated (RFC 3948 is for esp)")
        var mode = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        mode.sas![0].mode = "beet"
        #expect(try error(f, mode) == "sas[0].mode: expected \"tunnel\" or \"transport\"")
        var lifetime = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        lifetime.sas![0].soft = LifetimeEntry(seconds: 7200)
        lifetime.sas![0].hard = LifetimeEntry(seconds: 3600)
        #expect(try error(f, lifetime) == "sas[0].soft.seconds: above the hard limit")
        // The window ipsec.conf's `replay` takes (0, or 64 to 4096 in steps of 64): any
        // other size once trapped in ReplayWindow (FuzzControl found replay 10).
        for size in [10, 63, 100, 4097, 65536, -1] {
            var replay = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
            replay.sas![1].replay = size
            #expect(try error(f, replay) == "sas[1].replay: expected 0 or a multiple of 64 from 64 to 4096 packets")
        }
        var hex = KeyDaemonControlTests.child(7, out: 0x4000, in: 0x4001)
        hex.sas![0].encKey = "zz"
        #expect(try error(f, hex) == "sas[0].encKey: expected an even number of hex digits")
        #expect(try error(f, Request(.remove, owner: "encd-iked")) == "remove needs \"sas\", \"flows\" and/or \"child\"")
        #expect(try error(f, Request(.getspi, proto: "gre", destination: "192.0.2.1")) == "getspi.proto: expected \"esp\" or \"ah\"")
        #expect(try error(f, Request(.update, owner: "encd-iked", sas: [KeyDaemonUpdateTests.pair[0]], peerPort: 0)) == "update.peerPort: port 0")
        #expect(try error(f, Request(.update, owner: "encd-iked", sas: [KeyDaemonUpdateTests.pair[0]], peer: "x"))
                == "update.peer: \"x\" is not an IPv4 or IPv6 address")
        #expect(f.snapshot.generation == generation && f.snapshot.sad.count == 2)
    }
}
