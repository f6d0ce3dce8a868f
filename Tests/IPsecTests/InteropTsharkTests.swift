import Crypto
import EncCore
import Foundation
import Testing
@testable import IPsec

/// Cross-checks encd's ESP output against Wireshark's ESP dissector: encd's packets go
/// into a pcap (LINKTYPE_RAW), tshark decrypts them with the SAs given as its `esp_sa`
/// table, and must find the inner packet byte for byte, dissect its ICMP/UDP, and (for
/// HMAC suites) report the ICV good.
///
/// tshark 4.0 (Debian bookworm) names: the UAT row is protocol, source, destination,
/// SPI, encryption, key, authentication, key; it checks HMAC ICVs but does not verify
/// the AES-GCM tag (it decrypts only), so for GCM only "not bad" can be asserted and
/// the tag itself is left to the scapy cross-check.
@Suite struct InteropTsharkTests {
    /// encd name → tshark 4.0's name in its ESP SA table.
    static let tsharkCipher: [Cipher: String] = [
        .null: "NULL", .aesCBC: "AES-CBC [RFC3602]", .aesCTR: "AES-CTR [RFC3686]",
        .aesGCM: "AES-GCM with 16 octet ICV [RFC4106]", .tripleDESCBC: "TripleDES-CBC [RFC2451]",
    ]
    static let tsharkDigest: [Digest: String] = [
        .md5: "HMAC-MD5-96 [RFC2403]", .sha1: "HMAC-SHA-1-96 [RFC2404]", .ripemd160: "MAC-RIPEMD-160-96 [RFC2857]",
        .sha256: "HMAC-SHA-256-128 [RFC4868]", .sha384: "HMAC-SHA-384-192 [RFC4868]", .sha512: "HMAC-SHA-512-256 [RFC4868]",
    ]

    /// (cipher, auth, outer family, NAT-T): AES-CBC+HMAC-SHA2-256 and AES-GCM in both
    /// families are the required ones; the rest widens the net (RIPEMD-160 is one scapy lacks).
    static let suites: [(String, String?, AddressFamily, Bool)] = [
        ("aes-128", "hmac-sha2-256", .inet, false), ("aes-256", "hmac-sha2-256", .inet6, false),
        ("aes-128-gcm", nil, .inet, false), ("aes-256-gcm", nil, .inet6, false),
        ("aes-128", "hmac-sha2-256", .inet, true), ("aes-128-gcm", nil, .inet6, true),
        ("3des-cbc", "hmac-md5", .inet, false), ("null", "hmac-sha1", .inet6, false),
        ("aes-128-ctr", "hmac-sha2-384", .inet, false), ("aes-192", "hmac-sha2-512", .inet6, false),
        ("aes-128", "hmac-ripemd160", .inet, false),
    ]

    /// What encd sent under one SA.
    struct Flow {
        let pair: SAPair
        let label: String
        let packets: [[UInt8]]
        let wires: [[UInt8]]
    }

    static func inner(_ family: AddressFamily) -> [[UInt8]] {
        let (a, b) = family == .inet ? (netA4, netB4) : (netA6, netB6)
        return [PacketBuilder.icmpEcho(source: a, destination: b, identifier: 0x77, sequence: 1, payload: Array("encd".utf8))]
            + [0, 1, 100, 1400].map {
                PacketBuilder.udp(source: a, destination: b, sourcePort: 40001, destinationPort: 40002,
                                  payload: (0..<$0).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            }
    }

    /// One `-o uat:esp_sa:` row for the SA.
    static func uatRow(_ spec: SASpec) throws -> String {
        let enc = try #require(spec.encryption)
        let cipher = try #require(tsharkCipher[enc.cipher], "no tshark name for \(enc)")
        let auth = try spec.integrity.map { try #require(tsharkDigest[$0.digest], "no tshark name for \($0)") } ?? "NULL"
        let fields = [spec.destination.family == .inet ? "IPv4" : "IPv6", "\(spec.source)", "\(spec.destination)",
                      "0x" + String(format: "%08x", spec.spi), cipher, spec.encryptionKey?.hexForDisplay ?? "",
                      auth, spec.integrityKey?.hexForDisplay ?? ""]
        return "uat:esp_sa:" + fields.map { "\"\($0)\"" }.joined(separator: ",")
    }

    @Test func tsharkDecryptsAndVerifiesWhatEncdSends() throws {
        let tshark = try Tool.locate("tshark")
        var flows = [Flow]()
        for (i, (enc, auth, family, natT)) in Self.suites.enumerated() {
            let hosts = family == .inet ? (hostA4, hostB4) : (hostA6, hostB6)
            let pair = try SAPair.esp(enc, auth: auth, from: hosts.0, to: hosts.1, spi: 0x5000 + UInt32(i),
                                      udp: natT ? UDPEncapsulation() : nil)
            let label = "\(enc)\(auth.map { "+" + $0 } ?? "") tunnel v\(family == .inet ? 4 : 6)\(natT ? " NAT-T" : "")"
            let packets = Self.inner(family)
            let wires = try pair.protectAll(packets, "encd protects, \(label)").map(\.wire)
            flows.append(Flow(pair: pair, label: label, packets: packets, wires: wires))
        }
        let dir = try Tool.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pcap = dir.appendingPathComponent("encd-esp.pcap")
        try Pcap.raw(flows.flatMap(\.wires)).write(to: pcap)

        let columns = ["frame.number", "esp.spi", "esp.icv_good", "esp.icv_bad", "esp.contained_data",
                       "icmp.type", "icmpv6.type", "udp.dstport",
                       "ip.checksum.status", "udp.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status"]
        var args = ["-r", pcap.path, "-n",
                    "-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
                    "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
        for f in flows { args += ["-o", try Self.uatRow(f.pair.spec)] }
        args += ["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"] + columns.flatMap { ["-e", $0] }
        // A private HOME so no personal Wireshark profile changes the result.
        let r = try Tool.run(tshark, args, environment: ["HOME": dir.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"])
        try #require(r.status == 0, "tshark exited \(r.status): \(r.stderr)")
        let rows = String(decoding: r.stdout, as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
        try #require(rows.count == flows.reduce(0) { $0 + $1.wires.count }, "tshark printed \(rows.count) frames: \(r.stderr)")

        var frame = 0
        for f in flows {
            let combined = f.pair.spec.encryption!.cipher.isCombined
            for (j, packet) in f.packets.enumerated() {
                let row = rows[frame]
                frame += 1
                try #require(row.count == columns.count, "tshark row \(frame): \(row)")
                let v = Dictionary(uniqueKeysWithValues: zip(columns, row))
                let what = "\(f.label), packet \(j) (\(packet.count) bytes), frame \(frame)"
                #expect(v["esp.spi"] == "0x" + String(format: "%08x", f.pair.spec.spi), "\(what)")
                #expect(v["esp.contained_data"] == Hex.encode(packet), "tshark's decrypted inner packet, \(what)")
                #expect(v["esp.icv_bad"] != "1", "tshark says the ICV is bad: \(what)")
                if !combined { #expect(v["esp.icv_good"] == "1", "tshark did not find the ICV good: \(what)") }
                // Every IPv4, UDP and ICMP checksum tshark checked, outer and inner: not bad
                // (Wireshark's status 0). encd's IPv6 NAT-T UDP checksum must be present and
                // good (RFC 8200); its IPv4 one is zero, as RFC 3948 §2.1 allows.
                for field in ["ip.checksum.status", "udp.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status"] {
                    #expect(!(v[field] ?? "").split(separator: ",").contains("0"), "tshark finds a bad \(field): \(what)")
                }
                if f.pair.spec.encapsulation != nil && f.pair.spec.source.family == .inet6 {
                    #expect(v["udp.checksum.status"]?.split(separator: ",").first == "1", "outer UDP checksum, \(what)")
                }
                if j == 0 {
                    let icmp = f.pair.spec.source.family == .inet ? v["icmp.type"] : v["icmpv6.type"]
                    let expected = f.pair.spec.source.family == .inet ? "8" : "128"
                    #expect(icmp == expected, "tshark's inner ICMP echo request, \(what)")
                } else {
                    #expect(v["udp.dstport"]?.split(separator: ",").last == "40002", "tshark's inner UDP, \(what)")
                }
            }
        }
    }

    /// The tshark check must be able to fail: a flipped ICV bit is reported bad.
    @Test func tsharkFlagsATamperedICV() throws {
        let tshark = try Tool.locate("tshark")
        let pair = try SAPair.esp("aes-128", auth: "hmac-sha2-256", spi: 0x6000)
        var wire = try #require(pair.protect(Self.inner(.inet)[0]).value)
        wire[wire.count - 1] ^= 1
        let dir = try Tool.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pcap = dir.appendingPathComponent("tampered.pcap")
        try Pcap.raw([wire]).write(to: pcap)
        let r = try Tool.run(tshark, ["-r", pcap.path, "-n", "-o", "esp.enable_encryption_decode:TRUE",
                                      "-o", "esp.enable_authentication_check:TRUE", "-o", try Self.uatRow(pair.spec),
                                      "-T", "fields", "-e", "esp.icv_good", "-e", "esp.icv_bad"],
                             environment: ["HOME": dir.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"])
        try #require(r.status == 0, "tshark exited \(r.status): \(r.stderr)")
        #expect(String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "0\t1")
    }
}

/// A classic libpcap file (not pcapng): global header, then one record per packet.
enum Pcap {
    /// LINKTYPE_RAW: each record is an IPv4 or IPv6 packet, no link header.
    static let linkTypeRaw: UInt32 = 101

    /// Packets stamped 1, 2, 3… seconds after the epoch, so the file is the same every run.
    static func raw(_ packets: [[UInt8]]) -> Data {
        var out = Data()
        func le32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func le16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        le32(0xA1B2_C3D4)            // magic: microsecond timestamps, little-endian file
        le16(2); le16(4)             // version 2.4
        le32(0)                      // thiszone
        le32(0)                      // sigfigs
        le32(65_535)                 // snaplen
        le32(linkTypeRaw)            // network
        for (i, p) in packets.enumerated() {
            le32(UInt32(i + 1))      // ts_sec
            le32(0)                  // ts_usec
            le32(UInt32(p.count))    // incl_len
            le32(UInt32(p.count))    // orig_len
            out.append(contentsOf: p)
        }
        return out
    }
}
