// Support for KernelNamespaceTests: the guard that keeps them out of any namespace but
// the one Tests/Integration/run-namespace-tests.sh made, child processes, packets.

import Foundation
import Glibc
import EncCore
@testable import Kernel

enum Netns {
    static var host: String? { ProcessInfo.processInfo.environment["ENCD_TEST_NETNS"] }
    static var peer: String? { ProcessInfo.processInfo.environment["ENCD_TEST_PEER_NETNS"] }

    /// True only as root, inside the namespace the script created (same inode as
    /// /run/netns/NAME), never in the namespace the machine runs in.
    static var active: Bool {
        guard getuid() == 0, let name = host, name.hasPrefix("encd-"), peer != nil else { return false }
        var mine = stat(), theirs = stat()
        guard stat("/proc/self/ns/net", &mine) == 0, stat("/run/netns/\(name)", &theirs) == 0 else { return false }
        return mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev
    }

    /// Runs a command to completion; returns (status, stdout).
    @discardableResult
    static func run(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Starts a command in the background (e.g. ping waiting for its reply).
    static func start(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    static func inPeer(_ args: [String]) -> [String] { ["ip", "netns", "exec", peer!] + args }

    /// Packets counted by the rule of `chain` whose text contains `marker`
    /// (from `nft list chain inet TABLE CHAIN`).
    static func counter(table: String, chain: String, containing marker: String) throws -> Int {
        let (status, text) = try run(["nft", "list", "chain", "inet", table, chain])
        guard status == 0 else { throw KernelConfigError("nft list chain \(table) \(chain): \(text)") }
        for line in text.split(separator: "\n") where line.contains(marker) {
            let words = line.split(separator: " ")
            if let i = words.firstIndex(of: "packets"), i + 1 < words.count, let n = Int(words[i + 1]) { return n }
        }
        throw KernelConfigError("no counter with \"\(marker)\" in chain \(chain):\n\(text)")
    }
}

enum Packets {
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.endIndex { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// An IPv4 ICMP echo request with valid checksums.
    static func echoRequest(from src: String, to dst: String, id: UInt16, seq: UInt16 = 1) -> [UInt8] {
        let payload = Array("encd-kernel-test".utf8)
        var icmp: [UInt8] = [8, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff), UInt8(seq >> 8), UInt8(seq & 0xff)] + payload
        let c = checksum(icmp[...])
        icmp[2] = UInt8(c >> 8); icmp[3] = UInt8(c & 0xff)
        let total = 20 + icmp.count
        var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34, 0x40, 0, 64, 1, 0, 0]
        ip += IPAddress(src)!.bytes + IPAddress(dst)!.bytes
        let h = checksum(ip[...])
        ip[10] = UInt8(h >> 8); ip[11] = UInt8(h & 0xff)
        return ip + icmp
    }

    static func v4Destination(_ p: [UInt8]) -> String? {
        guard p.count >= 20, p[0] >> 4 == 4 else { return nil }
        return "\(p[16]).\(p[17]).\(p[18]).\(p[19])"
    }

    static func v4Protocol(_ p: [UInt8]) -> UInt8? { p.count >= 20 && p[0] >> 4 == 4 ? p[9] : nil }
}

extension PacketQueue {
    /// Receives until `match` accepts a packet or `seconds` pass; every packet that does
    /// not match gets `otherwise` (so the kernel is never left waiting).
    func await(seconds: Double, otherwise: (QueuedPacket) -> QueueVerdict = { _ in .accept },
               _ match: (QueuedPacket, [UInt8]) -> Bool) -> (QueuedPacket, [UInt8])? {
        let batch = QueueBatch(capacity: 8)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard case .done(let n) = receive(into: batch, wait: true) else { continue }
            var found: (QueuedPacket, [UInt8])?
            for i in 0..<n {
                let bytes = batch.buffers[i].array
                if found == nil, match(batch[i], bytes) {
                    found = (batch[i], bytes)
                } else {
                    _ = setVerdict(otherwise(batch[i]), id: batch[i].id)
                }
            }
            _ = flushVerdicts()
            if let found { return found }
        }
        return nil
    }
}

/// An IKE daemon's sockets on the NAT-T port (4500, IPv4 and IPv6, wildcard), as
/// charon or encd-iked bind them, to see what reaches them.
final class IKESocket {
    private var descriptors: [Int32] = []

    init() throws {
        for family in [AF_INET, AF_INET6] {
            let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw SystemError("socket(udp)", errno: errno) }
            descriptors.append(fd)
            var on: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            var rc: Int32
            if family == AF_INET6 {
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size))
                var a = sockaddr_in6()
                a.sin6_family = sa_family_t(AF_INET6)
                a.sin6_port = UInt16(4500).bigEndian
                rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            } else {
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = UInt16(4500).bigEndian
                rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            }
            guard rc == 0 else { throw SystemError("bind(udp 4500)", errno: errno) }
        }
    }

    deinit { descriptors.forEach { close($0) } }

    /// The datagrams that arrived within half a second, IPv4's first.
    func received() -> [[UInt8]] {
        usleep(500_000)
        var out: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        for fd in descriptors {
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n >= 0 else { break }
                out.append(Array(buffer[0..<n]))
            }
        }
        return out
    }
}
