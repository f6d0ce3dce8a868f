// Log: encd's log lines go to stderr (the journal under systemd, the terminal with
// -d). Never a line per packet: the packet path reports through RateLimitedEvents,
// which prints at most one line per kind per interval with a count of what it held
// back. Key material never reaches a log line (SecretKey prints as "<N-bit key>").

import Foundation
import IPsec
import EncCore
import Synchronization

public final class Log: @unchecked Sendable {
    public enum Level: Int, Comparable, Sendable {
        case error = 0, warning, info, debug
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var tag: String { ["error", "warning", "info", "debug"][rawValue] }
    }
    public let level: Level
    private let lock = Mutex<Void>(())
    /// Every line also goes here (tests).
    public var mirror: ((String) -> Void)?

    public init(level: Level) { self.level = level }

    public func log(_ l: Level, _ message: @autoclosure () -> String) {
        guard l <= level else { return }
        let line = "encd: \(l == .info ? "" : l.tag + ": ")\(message())"
        lock.withLock { _ in
            FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
            mirror?(line)
        }
    }
    public func error(_ m: @autoclosure () -> String) { log(.error, m()) }
    public func warning(_ m: @autoclosure () -> String) { log(.warning, m()) }
    public func info(_ m: @autoclosure () -> String) { log(.info, m()) }
    public func debug(_ m: @autoclosure () -> String) { log(.debug, m()) }
}

/// The EventSink the daemon uses: rate-limited log lines, as illumos'
/// ipsec_policy_log_interval (`ipsec.policy_log_interval` seconds; 0 = never log), and
/// the same events for `encctl -m` clients, at most one per kind per second whatever
/// the log interval (nothing is built when no client listens).
public final class RateLimitedEvents: EventSink, @unchecked Sendable {
    private let log: Log
    private let clock: CoarseClock
    public let bus: EventBus?
    private let interval = Atomic<UInt64>(1)
    private enum Kind: Int, CaseIterable { case acquire, policy, replay, auth }
    /// Per kind: when the last line was printed (clock + 1; 0 = never) and how many
    /// events were held back since. One window for the log, one for monitor clients.
    private let window = Mutex<[(last: UInt64, held: UInt64)]>(Array(repeating: (0, 0), count: Kind.allCases.count))
    /// Per kind for monitors (acquire uses `acquireWindow` instead).
    private let monitorWindow = Mutex<[(last: UInt64, held: UInt64)]>(Array(repeating: (0, 0), count: Kind.allCases.count))
    /// Acquires reach monitors once per second per flow, not per kind: a key daemon
    /// must hear of two flows that need SAs at once. A flow's slot is its place in the
    /// SPD modulo 64 (fixed memory, nothing allocated on the packet path); flows 64
    /// places apart share a slot and its limit.
    private static let acquireSlots = 64
    private let acquireWindow = Mutex<[(last: UInt64, held: UInt64)]>(
        Array(repeating: (0, 0), count: RateLimitedEvents.acquireSlots))

    public init(log: Log, clock: CoarseClock, interval: UInt64, bus: EventBus? = nil) {
        self.log = log
        self.clock = clock
        self.bus = bus
        self.interval.store(interval, ordering: .relaxed)
    }

    public func setInterval(_ s: UInt64) { interval.store(s, ordering: .relaxed) }
    public var currentInterval: UInt64 { interval.load(ordering: .relaxed) }

    /// The number of events held back since the last line when a line of this kind
    /// may be printed now; nil when it may not.
    private static func allow(_ k: Kind, every iv: UInt64, now: UInt64,
                              _ m: borrowing Mutex<[(last: UInt64, held: UInt64)]>) -> UInt64? {
        guard iv > 0 else { return nil }
        let now = now + 1
        return m.withLock { w -> UInt64? in
            let i = k.rawValue
            if w[i].last != 0 && now < w[i].last + iv {
                w[i].held += 1
                return nil
            }
            let n = w[i].held
            w[i] = (now, 0)
            return n
        }
    }

    /// (held back for the log, held back for monitors); nil where nothing is due.
    private func due(_ k: Kind) -> (log: UInt64?, monitor: UInt64?) {
        let now = clock.now
        let l = Self.allow(k, every: interval.load(ordering: .relaxed), now: now, window)
        let m = bus?.hasSubscribers == true ? Self.allow(k, every: 1, now: now, monitorWindow) : nil
        return (l, m)
    }

    private func suffix(_ n: UInt64) -> String { n == 0 ? "" : " (and \(n) more since the last line)" }

    /// Held-back count when the acquire of the flow at `index` may reach monitors
    /// now; nil when not.
    private func acquireDue(_ index: Int) -> UInt64? {
        guard bus?.hasSubscribers == true else { return nil }
        let now = clock.now + 1
        return acquireWindow.withLock { w -> UInt64? in
            let i = Int(UInt(bitPattern: index) % UInt(Self.acquireSlots))
            if w[i].last != 0 && now < w[i].last + 1 {
                w[i].held += 1
                return nil
            }
            let n = w[i].held
            w[i] = (now, 0)
            return n
        }
    }

    public func acquire(flow: FlowSpec, index: Int, packet: Selector) {
        let l = Self.allow(.acquire, every: interval.load(ordering: .relaxed), now: clock.now, window)
        let m = acquireDue(index)
        guard l != nil || m != nil else { return }
        let text = "acquire: no SA for flow \(flow.proto) \(flow.direction) from \(flow.source) to \(flow.destination) peer \(flow.peer.map { "\($0)" } ?? "any") type \(flow.type) (packet \(packet.source) -> \(packet.destination))"
        if let n = l { log.info(text + suffix(n)) }
        if let n = m {
            bus?.publish("acquire", text + suffix(n)) {
                $0.flow = ControlStatus.flow(flow)
                $0.packet = ControlStatus.eventPacket(packet)
            }
        }
    }

    public func policyFailure(_ packet: Selector, sa: SecurityAssociation) {
        let d = due(.policy)
        guard d.log != nil || d.monitor != nil else { return }
        let text = "inbound policy: \(packet.source) -> \(packet.destination) proto \(packet.proto) arrived on \(sa.spec.proto) spi 0x\(hex8(sa.spec.spi)) from \(sa.spec.source) but no flow of that SA covers it: dropped"
        if let n = d.log { log.warning(text + suffix(n)) }
        if let n = d.monitor {
            bus?.publish("policy-failure", text + suffix(n)) {
                $0.sa = ControlStatus.eventSA(sa)
                $0.packet = ControlStatus.eventPacket(packet)
            }
        }
    }

    public func cleartextRefused(_ packet: Selector) {
        let d = due(.policy)
        guard d.log != nil || d.monitor != nil else { return }
        let text = "inbound policy: cleartext \(packet.source) -> \(packet.destination) proto \(packet.proto)\(packet.sourcePort != 0 || packet.destinationPort != 0 ? " ports \(packet.sourcePort) -> \(packet.destinationPort)" : "") is covered by a require flow but did not come through enc0: dropped"
        if let n = d.log { log.warning(text + suffix(n)) }
        if let n = d.monitor { bus?.publish("policy-failure", text + suffix(n)) { $0.packet = ControlStatus.eventPacket(packet) } }
    }

    public func inputFailure(_ reason: Counter, spi: UInt32, from: IPAddress) {
        let replay = reason == .espReplay || reason == .ahReplay || reason == .espReplayZero || reason == .ahReplayZero
        let d = due(replay ? .replay : .auth)
        guard d.log != nil || d.monitor != nil else { return }
        let text = "\(Counter.plural(reason.encText, 1)) from \(from) spi 0x\(hex8(spi))"
        if let n = d.log { log.warning(text + suffix(n)) }
        if let n = d.monitor { bus?.publish(replay ? "replay" : "auth-failure", text + suffix(n)) }
    }
}
