import Crypto
import EncCore
import Foundation
import Testing
@testable import IPsec

/// Cross-checks encd's ESP and AH against scapy's (scapy.layers.ipsec), an implementation
/// we did not write: what encd sends scapy decrypts and verifies to the same inner bytes,
/// and what scapy sends encd accepts, for every mode, family, NAT-T and packet size below.
/// One python process per test (Interop/scapy_peer.py); failures name suite, layout and packet.
@Suite struct InteropScapyTests {
    /// Where an SA runs and what it carries.
    struct Layout: CustomStringConvertible {
        let mode: IPsecMode
        let outer: (IPAddress, IPAddress)
        let inner: (IPAddress, IPAddress)
        let udp: Bool
        let esn: Bool

        var description: String {
            let fam = { (a: IPAddress) in a.family == .inet ? "4" : "6" }
            let what = mode == .tunnel ? "tunnel \(fam(inner.0))-in-\(fam(outer.0))" : "transport v\(fam(outer.0))"
            return what + (udp ? " NAT-T" : "") + (esn ? " ESN" : "")
        }

        static func tunnel(_ outer: (IPAddress, IPAddress), _ inner: (IPAddress, IPAddress), udp: Bool = false, esn: Bool = false) -> Layout {
            Layout(mode: .tunnel, outer: outer, inner: inner, udp: udp, esn: esn)
        }
        static func transport(_ hosts: (IPAddress, IPAddress), udp: Bool = false) -> Layout {
            Layout(mode: .transport, outer: hosts, inner: hosts, udp: udp, esn: false)
        }
    }

    static let v4 = (hostA4, hostB4), v6 = (hostA6, hostB6), in4 = (netA4, netB4), in6 = (netA6, netB6)

    /// Tunnel in every family combination, transport in both, each plain and (ESP only)
    /// UDP-encapsulated; ESN in tunnel mode with sequence numbers crossing 2^32.
    static func layouts(nat: Bool) -> [Layout] {
        var out = [Layout]()
        for udp in nat ? [false, true] : [false] {
            out += [.tunnel(v4, in4, udp: udp), .tunnel(v6, in6, udp: udp), .tunnel(v4, in6, udp: udp),
                    .tunnel(v6, in4, udp: udp), .transport(v4, udp: udp), .transport(v6, udp: udp)]
        }
        out += [.tunnel(v4, in4, esn: true), .tunnel(v6, in6, udp: nat, esn: true)]
        return out
    }

    /// Fewer layouts for the further suites (scapy takes about 10 ms a packet).
    static func someLayouts(nat: Bool) -> [Layout] {
        [.tunnel(v4, in4), .tunnel(v6, in6, udp: nat), .transport(v6), .transport(v4, udp: nat), .tunnel(v6, in4, esn: true)]
    }

    /// UDP of several sizes (empty, one AES block + 1, near the MTU), ICMP echo, TCP.
    static func packets(_ src: IPAddress, _ dst: IPAddress) -> [[UInt8]] {
        [0, 17, 1400].map { sample(src, dst, size: $0) } + [
            PacketBuilder.icmpEcho(source: src, destination: dst, identifier: 7, sequence: 3, payload: [1, 2, 3, 4, 5]),
            PacketBuilder.tcp(source: src, destination: dst, sourcePort: 40000, destinationPort: 443, payload: Array(repeating: 0x5A, count: 33)),
        ]
    }

    /// The ESP suites every layout is checked with.
    static let requiredESP: [(String, String?)] = [
        ("aes-128-gcm", nil), ("aes-128", "hmac-sha2-256"), ("chacha20-poly1305", nil),
        ("3des-cbc", "hmac-md5"), ("null", "hmac-sha1"),
    ]
    /// The rest of what both sides implement (scapy has no RIPEMD-160; Blowfish and
    /// CAST need OpenSSL's legacy provider).
    static let furtherESP: [(String, String?)] = [
        ("aes-256-gcm", nil), ("aes-256", "hmac-sha2-256"), ("aes-192", "hmac-sha2-512"),
        ("aes-128-ctr", "hmac-sha2-384"), ("aes-256-gmac", nil),
    ]
    static let requiredAH = ["hmac-sha2-256", "hmac-sha1"]
    static let furtherAH = ["hmac-md5", "hmac-sha2-384", "hmac-sha2-512"]

    /// The first sequence number of an ESN layout: a few below 2^32, so the run crosses it.
    static let esnStart: UInt64 = 0xFFFF_FFFE

    struct Case {
        let label: String
        let pair: SAPair
        let packets: [[UInt8]]
        let sent: [(wire: [UInt8], seq: UInt64)]
        let scapySeqs: [UInt64]
    }

    /// Builds the SA for `layout`, lets encd protect the packets, and picks the
    /// sequence numbers scapy will send under.
    static func makeCase(_ suite: String, _ layout: Layout, spec: SASpec) throws -> Case {
        var store: MemorySequenceStore?
        if layout.esn {
            // encd's outbound SA starts where the store says: just below 2^32.
            store = MemorySequenceStore()
            store?.preload(spec, through: esnStart - 1)
        }
        let pair = try SAPair(spec, store: store)
        let packets = packets(layout.inner.0, layout.inner.1)
        let label = "\(suite) \(layout)"
        let sent = try pair.protectAll(packets, "encd protects, \(label)")
        var seqs = Array(UInt64(1)...UInt64(packets.count))
        if layout.esn {
            // scapy cannot send a low half of 0 (it reads 0 as "use my counter"): skip 2^32.
            seqs = Array((esnStart..<(esnStart + UInt64(packets.count) + 1)).filter { $0 & 0xFFFF_FFFF != 0 })
            pair.inbound.replay.reset(top: esnStart - 16)
        }
        return Case(label: label, pair: pair, packets: packets, sent: sent, scapySeqs: seqs)
    }

    /// Runs every case through scapy both ways and checks the inner bytes.
    static func crossCheck(_ cases: [Case]) throws {
        var jobs = [PeerJob]()
        for c in cases {
            let sa = PeerSA(c.pair.spec)
            jobs.append(PeerJob(sa: sa, op: .decrypt, packets: c.sent.map { PeerPacket(hex: Hex.encode($0.wire), seq: $0.seq) }))
            jobs.append(PeerJob(sa: sa, op: .encrypt, packets: zip(c.packets, c.scapySeqs).map { PeerPacket(hex: Hex.encode($0), seq: $1) }))
        }
        let results = try ScapyPeer.run(jobs)
        for (i, c) in cases.enumerated() {
            let decrypted = results[2 * i], encrypted = results[2 * i + 1]
            for (j, packet) in c.packets.enumerated() {
                let what = "\(c.label), packet \(j) (\(packet.count) bytes, seq \(String(c.sent[j].seq, radix: 16)))"
                // encd → scapy
                let r = decrypted[j]
                #expect(r.error == nil, "scapy refused what encd sent: \(what): \(r.error ?? "")")
                if r.error == nil { #expect(r.bytes == packet, "scapy decrypted other bytes than encd protected: \(what)") }
                // scapy → encd
                let e = encrypted[j]
                guard let wire = e.bytes else {
                    Issue.record("scapy could not protect \(what): \(e.error ?? "")")
                    continue
                }
                let proto = wire[0] >> 4 == 4 ? wire[9] : wire[6]
                let expected = c.pair.spec.encapsulation != nil ? IPProtocol.udp : (c.pair.spec.proto == .esp ? IPProtocol.esp : IPProtocol.ah)
                #expect(proto == expected, "scapy's wire protocol, \(what)")
                let back = c.pair.unprotect(wire)
                #expect(back.value == packet, "encd did not accept what scapy sent: \(what): \(back.drop.map { "\($0)" } ?? "other bytes")")
            }
        }
    }

    static func espCases(_ suites: [(String, String?)], _ layouts: [Layout]) throws -> [Case] {
        try suites.flatMap { enc, auth in
            try layouts.map { layout in
                try makeCase(enc + (auth.map { "+" + $0 } ?? ""), layout,
                             spec: SAPair.esp(enc, auth: auth, mode: layout.mode, from: layout.outer.0, to: layout.outer.1,
                                              esn: layout.esn, udp: layout.udp ? UDPEncapsulation() : nil).spec)
            }
        }
    }

    static func ahCases(_ suites: [String], _ layouts: [Layout]) throws -> [Case] {
        try suites.flatMap { auth in
            try layouts.map { layout in
                try makeCase("ah " + auth, layout,
                             spec: SAPair.ah(auth, mode: layout.mode, from: layout.outer.0, to: layout.outer.1, esn: layout.esn).spec)
            }
        }
    }

    @Test func requiredESPSuitesInteroperateWithScapy() throws {
        try Self.crossCheck(Self.espCases(Self.requiredESP, Self.layouts(nat: true)))
    }

    @Test func furtherESPSuitesInteroperateWithScapy() throws {
        try Self.crossCheck(Self.espCases(Self.furtherESP, Self.someLayouts(nat: true)))
    }

    @Test func ahInteroperatesWithScapy() throws {
        try Self.crossCheck(Self.ahCases(Self.requiredAH, Self.layouts(nat: false))
                            + Self.ahCases(Self.furtherAH, Self.someLayouts(nat: false)))
    }
}
