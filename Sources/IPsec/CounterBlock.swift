// CounterBlock: a fixed array of 64-bit counters indexed by an enum, one block per
// writer (a worker, or an SA direction). Increments are relaxed load+store with no
// read-modify-write, which is exact as long as each block has a single writer; any
// thread may read a block at any time (monitoring sees a value at most one update
// old). Nothing allocates after init.

import Foundation
import Synchronization

public protocol CounterIndex: CaseIterable, Sendable {
    var rawValue: Int { get }
}

extension Counter: CounterIndex {}

public final class CounterBlock<Index: CounterIndex>: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>
    public let count: Int

    public init() {
        count = Index.allCases.count
        slots = .allocate(capacity: count)
        for i in 0..<count { (slots + i).initialize(to: Atomic<UInt64>(0)) }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    /// Adds `n`; call only from this block's single writer.
    @inline(__always) public func add(_ index: Index, _ n: UInt64 = 1) {
        let slot = slots + index.rawValue
        slot.pointee.store(slot.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// Reads one counter from any thread.
    @inline(__always) public subscript(_ index: Index) -> UInt64 {
        slots[index.rawValue].load(ordering: .relaxed)
    }

    /// All counters, by raw value (control path).
    public func snapshot() -> [UInt64] {
        (0..<count).map { slots[$0].load(ordering: .relaxed) }
    }
}

/// Sums of several blocks (e.g. every worker's), with OpenBSD's grouped view.
public struct CounterSnapshot: Sendable, Equatable {
    public private(set) var values: [UInt64]

    public init() { values = [UInt64](repeating: 0, count: Counter.allCases.count) }

    public init(summing blocks: [CounterBlock<Counter>]) {
        self.init()
        for b in blocks { merge(b.snapshot()) }
    }

    public mutating func merge(_ other: [UInt64]) {
        for i in 0..<min(values.count, other.count) { values[i] &+= other[i] }
    }

    public subscript(_ c: Counter) -> UInt64 { values[c.rawValue] }

    /// The value of an OpenBSD line in a group: the sum of every case that adds to it.
    public func value(_ field: OpenBSDField, in group: CounterGroup) -> UInt64 {
        var sum: UInt64 = 0
        for c in Counter.allCases {
            switch group {
            case .esp, .ah:
                if c.group == group && c.openBSDField == field { sum &+= self[c] }
            case .ipsec:
                // OpenBSD's ipsecstat aggregates both protocols.
                let proto = c.group == .esp || c.group == .ah
                switch field {
                case .idrops: if proto && c.dropSide == .inbound { sum &+= self[c] }
                case .odrops: if proto && c.dropSide == .outbound { sum &+= self[c] }
                case .exctdb: if c == .saHardExpired { sum &+= self[c] }
                default: if proto && c.openBSDField == field { sum &+= self[c] }
                }
            case .enc:
                break
            }
        }
        return sum
    }

    /// `netstat -s -p <group>` text: heading, then one line per field; with
    /// `hideZeros` (-ss) zero lines are left out.
    public func report(_ group: CounterGroup, hideZeros: Bool = false) -> String {
        var out = "\(group.rawValue):\n"
        if group == .enc {
            for c in Counter.allCases where c.group == .enc {
                let v = self[c]
                if hideZeros && v == 0 { continue }
                out += "\t\(v) " + Counter.plural(c.encText, v) + "\n"
            }
            return out
        }
        for f in OpenBSDField.lines(group) {
            let v = value(f, in: group)
            if hideZeros && v == 0 { continue }
            out += f.line(v, in: group) + "\n"
        }
        return out
    }
}

extension Counter {
    public static func plural(_ text: String, _ v: UInt64) -> String {
        text.replacingOccurrences(of: "%s", with: v == 1 ? "" : "s")
    }
}
