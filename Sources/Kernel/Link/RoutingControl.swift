// RoutingControl: the link, policy-routing and sysctl changes encd makes for enc0.
// Control path: every call throws an error naming what it tried.
//
// encd's routing: `ip rule fwmark PROTECT/PROTECT lookup T` (IPv4 and IPv6) and
// `default dev enc0 table T`, so packets the [X] verdict marked for protection are
// routed into enc0; loose rp_filter on enc0 so decrypted packets written there pass.

import EncCore

public protocol RoutingControl: AnyObject {
    /// `ip link set NAME up|down [mtu MTU]`.
    func setLink(name: String, up: Bool, mtu: UInt32?) throws
    /// The interface index of `name` (throws ENODEV when it does not exist).
    func interfaceIndex(of name: String) throws -> UInt32
    /// `ip rule add ...`; an identical rule already present (crashed run) is kept.
    func addRule(_ rule: MarkRule) throws
    /// The MTU a packet to `destination` (from `source`, with `mark`) meets on its way
    /// out: its route's MTU metric or cached path MTU, else its interface's MTU.
    func pathMTU(to destination: IPAddress, from source: IPAddress?, mark: UInt32) throws -> UInt32
    /// `ip rule del ...`; a missing rule is not an error.
    func deleteRule(_ rule: MarkRule) throws
    /// `ip route replace default dev DEVICE table T`.
    func addDefaultRoute(family: AddressFamily, table: UInt32, device: String) throws
    /// `ip route del default dev DEVICE table T`; a missing route is not an error.
    func deleteDefaultRoute(family: AddressFamily, table: UInt32, device: String) throws
    /// `ip addr replace ADDRESS/LEN dev DEVICE`.
    func addAddress(_ address: IPAddress, prefixLength: Int, device: String) throws
    /// `ip addr del ADDRESS/LEN dev DEVICE`; a missing address or device is not an error.
    func deleteAddress(_ address: IPAddress, prefixLength: Int, device: String) throws
    /// Writes `value` to /proc/sys/`key` (key like "net/ipv4/conf/enc0/rp_filter"),
    /// in the caller's network namespace.
    func setSysctl(_ key: String, _ value: String) throws
}

extension RoutingControl {
    /// rp_filter 2 (loose) on `device`: the kernel only checks that the source is
    /// routable somewhere, so packets encd injects into enc0 are not dropped.
    /// The kernel uses max(conf/all, conf/DEVICE), and on an interface without an IPv4
    /// address *any* non-zero rp_filter drops sources not routed back through it: enc0
    /// needs an address (addAddress) for loose mode to work.
    public func setLooseReversePathFilter(device: String) throws {
        try setSysctl("net/ipv4/conf/\(device)/rp_filter", "2")
    }
}
