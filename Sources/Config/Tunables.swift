// Run-time tunables, set with `set NAME VALUE` in ipsec.conf and later shown or changed
// by encctl. Names follow OpenBSD's sysctl(2) MIBs where one exists (net.inet.*) and
// illumos' ndd tunables otherwise (ipsec.*). Values are integers; booleans are 0 or 1.

public struct Tunables: Sendable, Hashable {
    /// net.inet.esp.enable: process ESP at all (0 drops every ESP packet, counted).
    public var espEnable = true
    /// net.inet.ah.enable: process AH at all.
    public var ahEnable = true
    /// net.inet.esp.udpencap: accept and send UDP-encapsulated ESP (RFC 3948).
    public var udpEncapEnable = true
    /// net.inet.esp.udpencap_port: the NAT-T port; SAs with `udpencap` and no `port` use it.
    public var udpEncapPort: UInt16 = 4500
    /// ipsec.replay_window: anti-replay window (packets) of SAs that do not say `replay`.
    /// 0 (off) as OpenBSD's manually keyed SAs.
    public var replayWindow = 64
    /// ipsec.policy_log_interval: at most one log line per this many seconds about
    /// packets dropped by policy (0 = never log them). illumos ipsec_policy_log_interval.
    public var policyLogInterval = 1
    /// ipsec.icmp_accept_clear: accept inbound cleartext ICMP error messages (unreachable,
    /// packet too big, time exceeded, parameter problem) that match a `require` flow, so
    /// path MTU discovery and traceroute work. illumos icmp_accept_clear_messages.
    public var icmpAcceptClear = true
    /// ipsec.use_fail_open: while encd is not running, traffic of `use` flows (that no
    /// other flow overrides) passes in cleartext instead of being dropped; require,
    /// dontacq and deny traffic stays dropped.
    public var useFailOpen = false

    public init() {}

    /// The allowed values of a tunable.
    public enum Kind: Sendable, Hashable {
        case boolean
        case integer(ClosedRange<Int>)
        /// 0, or a multiple of `step` within the range.
        case window(ClosedRange<Int>, step: Int)
    }

    /// One row of the tunables table.
    public struct Info: Sendable {
        public let name: String
        public let kind: Kind
        public let defaultValue: Int
        public let doc: String
        let get: @Sendable (Tunables) -> Int
        let set: @Sendable (inout Tunables, Int) -> Void

        /// "0 or 1", "1 to 65535", "0 or a multiple of 64 from 64 to 4096".
        public var rangeText: String {
            switch kind {
            case .boolean: return "0 or 1"
            case .integer(let r): return "\(r.lowerBound) to \(r.upperBound)"
            case .window(let r, let step): return "0 or a multiple of \(step) from \(r.lowerBound) to \(r.upperBound)"
            }
        }

        public func accepts(_ v: Int) -> Bool {
            switch kind {
            case .boolean: return v == 0 || v == 1
            case .integer(let r): return r.contains(v)
            case .window(let r, let step): return v == 0 || (r.contains(v) && v % step == 0)
            }
        }
    }

    /// Replay windows: the RFC 6479 bitmap works in 64-bit blocks.
    public static let replayWindowRange = 64...4096
    public static let replayWindowStep = 64

    public static let table: [Info] = [
        Info(name: "net.inet.esp.enable", kind: .boolean, defaultValue: 1,
             doc: "Process ESP packets; 0 drops them all (counted).",
             get: { $0.espEnable ? 1 : 0 }, set: { $0.espEnable = $1 != 0 }),
        Info(name: "net.inet.ah.enable", kind: .boolean, defaultValue: 1,
             doc: "Process AH packets; 0 drops them all (counted).",
             get: { $0.ahEnable ? 1 : 0 }, set: { $0.ahEnable = $1 != 0 }),
        Info(name: "net.inet.esp.udpencap", kind: .boolean, defaultValue: 1,
             doc: "Accept and send UDP-encapsulated ESP (NAT-T, RFC 3948).",
             get: { $0.udpEncapEnable ? 1 : 0 }, set: { $0.udpEncapEnable = $1 != 0 }),
        Info(name: "net.inet.esp.udpencap_port", kind: .integer(1...65535), defaultValue: 4500,
             doc: "UDP port of encapsulated ESP; SAs with `udpencap` and no `port` use it.",
             get: { Int($0.udpEncapPort) }, set: { $0.udpEncapPort = UInt16($1) }),
        Info(name: "ipsec.replay_window", kind: .window(replayWindowRange, step: replayWindowStep), defaultValue: 64,
             doc: "Anti-replay window in packets for SAs without `replay`; 0 = off (OpenBSD's manual SAs have it off because they cannot keep replay state across a restart; encd keeps it in the state directory).",
             get: { $0.replayWindow }, set: { $0.replayWindow = $1 }),
        Info(name: "ipsec.policy_log_interval", kind: .integer(0...86400), defaultValue: 1,
             doc: "Seconds between log lines about packets dropped by policy; 0 = never log them.",
             get: { $0.policyLogInterval }, set: { $0.policyLogInterval = $1 }),
        Info(name: "ipsec.icmp_accept_clear", kind: .boolean, defaultValue: 1,
             doc: "Accept inbound cleartext ICMP errors that match a require flow (path MTU discovery).",
             get: { $0.icmpAcceptClear ? 1 : 0 }, set: { $0.icmpAcceptClear = $1 != 0 }),
        Info(name: "ipsec.use_fail_open", kind: .boolean, defaultValue: 0,
             doc: "While encd is not running, let traffic of `use` flows pass in cleartext (require traffic stays dropped).",
             get: { $0.useFailOpen ? 1 : 0 }, set: { $0.useFailOpen = $1 != 0 }),
    ]

    public static func info(_ name: String) -> Info? { table.first { $0.name == name } }

    /// The current value of a tunable, nil for an unknown name.
    public func value(_ name: String) -> Int? { Tunables.info(name).map { $0.get(self) } }

    /// Sets a tunable from its text; the error message says what is allowed.
    public mutating func set(_ name: String, to text: String) throws {
        guard let info = Tunables.info(name) else {
            throw TunableError(message: "unknown tunable \"\(name)\": expected one of "
                + Tunables.table.map(\.name).joined(separator: ", "))
        }
        guard let v = decimal(text), info.accepts(v) else {
            throw TunableError(message: "invalid value \"\(text)\" for \(name): expected \(info.rangeText)")
        }
        info.set(&self, v)
    }

    /// "name=value" for every tunable, in table order (sysctl(8) style).
    public var lines: [String] { Tunables.table.map { "\($0.name)=\($0.get(self))" } }

    /// The tunables whose value differs from the default.
    public var changed: [(name: String, value: Int)] {
        Tunables.table.compactMap { $0.get(self) == $0.defaultValue ? nil : ($0.name, $0.get(self)) }
    }
}

public struct TunableError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
