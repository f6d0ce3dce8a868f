// Small shared pieces of the daemon: the snapshot box the stages read, a coarse
// monotonic clock, the event sink (rate-limited log lines and encctl -m) and the
// run-time switches the stages read.

import Config
import EncCore
import Foundation
import IPsec
import Synchronization

/// Holds the current PolicySnapshot; readers take it under a short lock, writers swap it.
public final class SnapshotBox: @unchecked Sendable {
    private let m: Mutex<PolicySnapshot>
    public init(_ s: PolicySnapshot = .empty) { m = Mutex(s) }
    public var value: PolicySnapshot { m.withLock { $0 } }
    public func replace(_ s: PolicySnapshot) { m.withLock { $0 = s } }
}

/// Seconds since an arbitrary start, advanced by whoever calls `tick` (the control
/// thread, once a second); reading it is one relaxed load.
public final class CoarseClock: @unchecked Sendable {
    private let seconds = Atomic<UInt64>(0)
    public init(start: UInt64 = 0) { seconds.store(start, ordering: .relaxed) }
    public var now: UInt64 { seconds.load(ordering: .relaxed) }
    public func set(_ s: UInt64) { seconds.store(s, ordering: .relaxed) }

    /// CLOCK_MONOTONIC in whole seconds.
    public static func monotonicSeconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec)
    }

    /// CLOCK_MONOTONIC in milliseconds (never 0 on a running system).
    public static func monotonicMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000 &+ UInt64(ts.tv_nsec / 1_000_000) | 1
    }
}

/// Where the packet path reports events. Implementations must not block and must
/// rate-limit: the packet path calls them per packet.
public protocol EventSink: AnyObject, Sendable {
    /// `index`: the flow's place in the SPD (acquires are limited per flow).
    func acquire(flow: FlowSpec, index: Int, packet: Selector)
    func policyFailure(_ packet: Selector, sa: SecurityAssociation)
    func cleartextRefused(_ packet: Selector)
    func inputFailure(_ reason: Counter, spi: UInt32, from: IPAddress)
}

/// The tunables the packet path reads per packet (net.inet.esp.enable, net.inet.ah.enable,
/// net.inet.esp.udpencap), set by the control path at any time; one relaxed load each.
public final class RuntimeSwitches: @unchecked Sendable {
    private let esp = Atomic<Bool>(true)
    private let ah = Atomic<Bool>(true)
    private let udpEncap = Atomic<Bool>(true)

    public init() {}

    @inline(__always) public var espEnabled: Bool { esp.load(ordering: .relaxed) }
    @inline(__always) public var ahEnabled: Bool { ah.load(ordering: .relaxed) }
    @inline(__always) public var udpEncapEnabled: Bool { udpEncap.load(ordering: .relaxed) }

    /// Takes the switches from a set of tunables.
    public func apply(_ t: Tunables) {
        esp.store(t.espEnable, ordering: .relaxed)
        ah.store(t.ahEnable, ordering: .relaxed)
        udpEncap.store(t.udpEncapEnable, ordering: .relaxed)
    }
}
