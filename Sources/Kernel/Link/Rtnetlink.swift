// Rtnetlink: RoutingControl on the real kernel, over a libmnl NETLINK_ROUTE socket
// (messages from RouteMessages) and /proc/sys for sysctls.

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter
import EncCore

public final class Rtnetlink: RoutingControl {
    private let socket: NetlinkSocket

    public init() throws {
        socket = try NetlinkSocket(bus: NETLINK_ROUTE, busName: "rtnetlink")
    }

    public func setLink(name: String, up: Bool, mtu: UInt32?) throws {
        let seq = socket.sequence()
        let what = "ip link set \(name) \(up ? "up" : "down")" + (mtu.map { " mtu \($0)" } ?? "")
        try socket.transact(RouteMessages.setLink(name: name, up: up, mtu: mtu, seq: seq), acked: [seq: what])
    }

    public func interfaceIndex(of name: String) throws -> UInt32 {
        let index = if_nametoindex(name)
        if index == 0 { throw SystemError("if_nametoindex(\(name))", errno: errno == 0 ? ENODEV : errno) }
        return index
    }

    public func pathMTU(to destination: IPAddress, from source: IPAddress?, mark: UInt32) throws -> UInt32 {
        var seq = socket.sequence()
        let what = "ip route get \(destination)" + (source.map { " from \($0)" } ?? "") + " mark 0x\(String(mark, radix: 16))"
        let route = RouteMessages.parseRoute(try socket.query(RouteMessages.getRoute(to: destination, from: source, mark: mark, seq: seq),
                                                              seq: seq, what: what))
        if let mtu = route.mtu { return mtu }
        guard let oif = route.outputInterface else { throw SystemError("\(what): no output interface", errno: ENETUNREACH) }
        seq = socket.sequence()
        let link = try socket.query(RouteMessages.getLink(index: oif, seq: seq), seq: seq, what: "ip link show dev \(oif)")
        guard let mtu = RouteMessages.parseLinkMTU(link) else { throw SystemError("ip link show dev \(oif): no MTU", errno: ENOENT) }
        return mtu
    }

    public func addRule(_ rule: MarkRule) throws {
        do {
            try send({ RouteMessages.rule(.add, rule, seq: $0) }, what: rule.command(.add))
        } catch let e as SystemError where e.errno == EEXIST {
            return
        }
    }

    public func deleteRule(_ rule: MarkRule) throws {
        do {
            try send({ RouteMessages.rule(.delete, rule, seq: $0) }, what: rule.command(.delete))
        } catch let e as SystemError where e.errno == ENOENT {
            return
        }
    }

    public func addDefaultRoute(family: AddressFamily, table: UInt32, device: String) throws {
        let index = try interfaceIndex(of: device)
        try send({ RouteMessages.defaultRoute(.add, family: family, table: table, ifindex: index, seq: $0) },
                 what: "ip -\(family == .inet ? 4 : 6) route replace default dev \(device) table \(table)")
    }

    public func deleteDefaultRoute(family: AddressFamily, table: UInt32, device: String) throws {
        let index: UInt32
        do { index = try interfaceIndex(of: device) } catch { return }  // device gone: its routes went with it
        do {
            try send({ RouteMessages.defaultRoute(.delete, family: family, table: table, ifindex: index, seq: $0) },
                     what: "ip -\(family == .inet ? 4 : 6) route del default dev \(device) table \(table)")
        } catch let e as SystemError where e.errno == ESRCH || e.errno == ENOENT {
            return
        }
    }

    public func addAddress(_ address: IPAddress, prefixLength: Int, device: String) throws {
        guard prefixLength >= 0, prefixLength <= address.family.bitCount else {
            throw KernelConfigError("prefix length \(prefixLength) out of range for \(address)")
        }
        let index = try interfaceIndex(of: device)
        let prefix = IPPrefix(address, length: prefixLength)
        try send({ RouteMessages.address(.add, prefix, host: address, ifindex: index, seq: $0) },
                 what: "ip addr replace \(address)/\(prefixLength) dev \(device)")
    }

    public func deleteAddress(_ address: IPAddress, prefixLength: Int, device: String) throws {
        let index: UInt32
        do { index = try interfaceIndex(of: device) } catch { return }
        let prefix = IPPrefix(address, length: min(max(prefixLength, 0), address.family.bitCount))
        do {
            try send({ RouteMessages.address(.delete, prefix, host: address, ifindex: index, seq: $0) },
                     what: "ip addr del \(address)/\(prefixLength) dev \(device)")
        } catch let e as SystemError where e.errno == EADDRNOTAVAIL || e.errno == ENOENT {
            return
        }
    }

    public func setSysctl(_ key: String, _ value: String) throws {
        try Sysctl.write(key, value)
    }

    private func send(_ build: (UInt32) -> [UInt8], what: String) throws {
        let seq = socket.sequence()
        try socket.transact(build(seq), acked: [seq: what])
    }
}

/// /proc/sys access for the current network namespace.
public enum Sysctl {
    public static func write(_ key: String, _ value: String) throws {
        guard !key.contains(".."), !key.hasPrefix("/") else {
            throw KernelConfigError("sysctl key \"\(key)\" must be relative to /proc/sys without '..'")
        }
        let path = "/proc/sys/" + key
        let fd = Int32(try Syscall.check("open(\(path))") { open(path, O_WRONLY | O_CLOEXEC) })
        defer { closeDescriptor(fd) }
        let text = value + "\n"
        try text.withCString { p in
            _ = try Syscall.check("write(\(path), \(value))") { Glibc.write(fd, p, strlen(p)) }
        }
    }

    public static func read(_ key: String) throws -> String {
        let path = "/proc/sys/" + key
        return try ProcFile.read(path).trimmingCharacters(in: " \n")
    }
}

/// Whole-file reads of small /proc files.
public enum ProcFile {
    public static func read(_ path: String) throws -> String {
        let fd = Int32(try Syscall.check("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) })
        defer { closeDescriptor(fd) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try chunk.withUnsafeMutableBytes { raw in
                try Syscall.check("read(\(path))") { Glibc.read(fd, raw.baseAddress, raw.count) }
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
