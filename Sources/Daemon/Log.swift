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
/// ipsec_policy_log_interval (`ipsec.policy_log_interval` seconds; 0 = never log).
public final class RateLimitedEvents: EventSink, @unchecked Sendable {
    private let log: Log
    private let clock: CoarseClock
    private let interval = Atomic<UInt64>(1)
    private enum Kind: Int, CaseIterable { case acquire, policy, input }
    /// Per kind: when the last line was printed (clock + 1; 0 = never) and how many
    /// events were held back since.
    private let window = Mutex<[(last: UInt64, held: UInt64)]>(Array(repeating: (0, 0), count: Kind.allCases.count))

    public init(log: Log, clock: CoarseClock, interval: UInt64) {
        self.log = log
        self.clock = clock
        self.interval.store(interval, ordering: .relaxed)
    }

    public func setInterval(_ s: UInt64) { interval.store(s, ordering: .relaxed) }

    /// The number of events held back since the last line when a line of this kind
    /// may be printed now; nil when it may not.
    private func allow(_ k: Kind) -> UInt64? {
        let iv = interval.load(ordering: .relaxed)
        guard iv > 0 else { return nil }
        let now = clock.now + 1
        return window.withLock { w -> UInt64? in
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

    private func suffix(_ n: UInt64) -> String { n == 0 ? "" : " (and \(n) more since the last line)" }

    public func acquire(flow: FlowSpec, packet: Selector) {
        guard let n = allow(.acquire) else { return }
        log.info("acquire: no SA for flow \(flow.proto) \(flow.direction) from \(flow.source) to \(flow.destination) peer \(flow.peer.map { "\($0)" } ?? "any") (packet \(packet.source) -> \(packet.destination))\(suffix(n))")
    }

    public func policyFailure(_ packet: Selector, sa: SecurityAssociation) {
        guard let n = allow(.policy) else { return }
        log.warning("inbound policy: \(packet.source) -> \(packet.destination) proto \(packet.proto) arrived on \(sa.spec.proto) spi 0x\(hex8(sa.spec.spi)) from \(sa.spec.source) but no flow of that SA covers it: dropped\(suffix(n))")
    }

    public func inputFailure(_ reason: Counter, spi: UInt32, from: IPAddress) {
        guard let n = allow(.input) else { return }
        log.warning("\(Counter.plural(reason.encText, 1)) from \(from) spi 0x\(hex8(spi))\(suffix(n))")
    }
}
