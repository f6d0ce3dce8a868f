// FakeRouting: an in-memory RoutingControl for tests. It records each request as the
// `ip` command it stands for and keeps the resulting state (rules, routes, sysctls,
// links), so a test can check both what was asked and what is left after stop.

import EncCore

public final class FakeRouting: RoutingControl {
    public private(set) var requests: [String] = []
    public private(set) var rules: Set<MarkRule> = []
    public private(set) var routes: Set<String> = []
    public private(set) var sysctls: [String: String] = [:]
    public private(set) var links: [String: (up: Bool, mtu: UInt32?)] = [:]
    /// Interfaces that exist, by name -> index. `setLink` on another name fails with ENODEV.
    public var interfaces: [String: UInt32]

    public init(interfaces: [String: UInt32] = ["enc0": 7]) { self.interfaces = interfaces }

    public func setLink(name: String, up: Bool, mtu: UInt32?) throws {
        requests.append("ip link set \(name) \(up ? "up" : "down")" + (mtu.map { " mtu \($0)" } ?? ""))
        guard interfaces[name] != nil else { throw SystemError("ip link set \(name)", errno: 19 /* ENODEV */) }
        links[name] = (up, mtu ?? links[name]?.mtu)
    }

    public func interfaceIndex(of name: String) throws -> UInt32 {
        guard let index = interfaces[name] else { throw SystemError("if_nametoindex(\(name))", errno: 19) }
        return index
    }

    /// Path MTUs by destination; others get `defaultPathMTU` (nil: no route, ENETUNREACH).
    public var pathMTUs: [IPAddress: UInt32] = [:]
    public var defaultPathMTU: UInt32? = 1500

    public func pathMTU(to destination: IPAddress, from source: IPAddress?, mark: UInt32) throws -> UInt32 {
        requests.append("ip route get \(destination)" + (source.map { " from \($0)" } ?? "") + " mark 0x\(String(mark, radix: 16))")
        guard let mtu = pathMTUs[destination] ?? defaultPathMTU else { throw SystemError("ip route get \(destination)", errno: 101) }
        return mtu
    }

    public func addRule(_ rule: MarkRule) throws {
        requests.append(rule.command(.add))
        rules.insert(rule)
    }

    public func deleteRule(_ rule: MarkRule) throws {
        requests.append(rule.command(.delete))
        rules.remove(rule)
    }

    public func addDefaultRoute(family: AddressFamily, table: UInt32, device: String) throws {
        let route = "ip -\(family == .inet ? 4 : 6) route default dev \(device) table \(table)"
        requests.append("ip -\(family == .inet ? 4 : 6) route replace default dev \(device) table \(table)")
        _ = try interfaceIndex(of: device)
        routes.insert(route)
    }

    public func deleteDefaultRoute(family: AddressFamily, table: UInt32, device: String) throws {
        let route = "ip -\(family == .inet ? 4 : 6) route default dev \(device) table \(table)"
        requests.append("ip -\(family == .inet ? 4 : 6) route del default dev \(device) table \(table)")
        routes.remove(route)
    }

    public private(set) var addresses: Set<String> = []

    public func addAddress(_ address: IPAddress, prefixLength: Int, device: String) throws {
        requests.append("ip addr replace \(address)/\(prefixLength) dev \(device)")
        _ = try interfaceIndex(of: device)
        addresses.insert("\(address)/\(prefixLength) dev \(device)")
    }

    public func deleteAddress(_ address: IPAddress, prefixLength: Int, device: String) throws {
        requests.append("ip addr del \(address)/\(prefixLength) dev \(device)")
        addresses.remove("\(address)/\(prefixLength) dev \(device)")
    }

    public func setSysctl(_ key: String, _ value: String) throws {
        requests.append("sysctl \(key)=\(value)")
        sysctls[key] = value
    }
}
