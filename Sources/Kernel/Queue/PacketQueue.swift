// PacketQueue: one NFQUEUE as encd sees it. Receive a batch of packets, answer each
// with a verdict. Verdicts are gathered and sent together by `flushVerdicts` (one
// send for a batch); a verdict that does not fit flushes first. Packet path: returns
// IOResult, allocates nothing.

import CNetfilter
import EncCore
import Synchronization

public protocol PacketQueue: AnyObject {
    var number: UInt16 { get }
    /// Descriptor for poll/epoll; -1 for fakes.
    var fileDescriptor: Int32 { get }
    /// Receives up to `batch.capacity` packets. With `wait`, blocks until at least one
    /// arrives; otherwise returns `.wouldBlock` when none is ready. `.done(n)` sets
    /// `batch.count = n`.
    func receive(into batch: QueueBatch, wait: Bool) -> IOResult
    /// Adds a verdict for packet `id`; with `payload`, the packet's bytes are replaced.
    func setVerdict(_ verdict: QueueVerdict, id: UInt32, payload: PacketBuffer?) -> IOResult
    /// Sends the gathered verdicts.
    func flushVerdicts() -> IOResult
    /// Named counters of this queue's own drops and anomalies.
    var counters: QueueCounters { get }
}

extension PacketQueue {
    public func setVerdict(_ verdict: QueueVerdict, id: UInt32) -> IOResult {
        setVerdict(verdict, id: id, payload: nil)
    }
}

/// How a queue is bound.
public struct QueueConfig: Equatable, Sendable {
    public var number: UInt16
    /// Bytes of each packet copied to encd (whole packets by default).
    public var copyRange: UInt32 = 0xffff
    /// Kernel-side queue length before it drops (counted as queue_dropped).
    public var maxLength: UInt32 = 4096
    /// Ask for conntrack state and mark with each packet.
    public var conntrack = false
    /// Let GSO packets through unsegmented (encd would have to segment them itself).
    public var gso = false
    /// Accept packets when the queue is full instead of dropping. Never for queues that
    /// carry protected traffic: it would leak cleartext.
    public var failOpen = false
    /// Receive buffer of the netlink socket.
    public var socketBuffer: Int32 = 8 << 20

    public init(number: UInt16) { self.number = number }

    /// NFQA_CFG_FLAGS for this config.
    public var flags: UInt32 {
        var f: UInt32 = 0
        if failOpen { f |= UInt32(NFQA_CFG_F_FAIL_OPEN) }
        if conntrack { f |= UInt32(NFQA_CFG_F_CONNTRACK) }
        if gso { f |= UInt32(NFQA_CFG_F_GSO) }
        return f
    }
}

/// A queue's counters as its worker keeps them and the control thread reads them
/// (`queueCounters` for encstat): relaxed loads and stores, no read-modify-write,
/// exact with one writer, each value at most one update old for a reader (as IPsec's
/// CounterBlock). Nothing allocates after init.
public final class QueueCounterCells: @unchecked Sendable {
    public enum Field: Int, CaseIterable {
        case received, overruns, verdictErrors, malformed, batchOverflowDrops, socketErrors
    }
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>

    public init() {
        slots = .allocate(capacity: Field.allCases.count)
        for i in 0..<Field.allCases.count { (slots + i).initialize(to: Atomic<UInt64>(0)) }
    }

    deinit {
        slots.deinitialize(count: Field.allCases.count)
        slots.deallocate()
    }

    /// Adds `n`; only from the queue's own (single) writer.
    @inline(__always) public func add(_ field: Field, _ n: UInt64 = 1) {
        let slot = slots + field.rawValue
        slot.pointee.store(slot.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    @inline(__always) public subscript(_ field: Field) -> UInt64 { slots[field.rawValue].load(ordering: .relaxed) }

    /// Every counter, from any thread.
    public var snapshot: QueueCounters {
        var c = QueueCounters()
        c.received = self[.received]
        c.overruns = self[.overruns]
        c.verdictErrors = self[.verdictErrors]
        c.malformed = self[.malformed]
        c.batchOverflowDrops = self[.batchOverflowDrops]
        c.socketErrors = self[.socketErrors]
        return c
    }
}

/// A queue's own anomalies; each drop encd makes here bumps exactly one of them.
public struct QueueCounters: Equatable, Sendable {
    /// Packets handed to encd.
    public var received: UInt64 = 0
    /// Receive overruns (ENOBUFS): the kernel dropped packets it could not deliver.
    public var overruns: UInt64 = 0
    /// Error replies from the kernel to a verdict (e.g. unknown packet id).
    public var verdictErrors: UInt64 = 0
    /// Netlink messages that were not packets or lacked a packet header.
    public var malformed: UInt64 = 0
    /// Packets dropped because a datagram carried more packets than the batch had room for.
    public var batchOverflowDrops: UInt64 = 0
    /// Errors a socket reported instead of a packet (raw sockets: an ICMP error about a
    /// packet this host sent), skipped.
    public var socketErrors: UInt64 = 0

    public init() {}

    /// (text, value) in the order encstat prints them.
    public var lines: [(String, UInt64)] {
        [("packets received from the queue", received),
         ("receive overruns (packets lost in the kernel)", overruns),
         ("verdicts rejected by the kernel", verdictErrors),
         ("malformed queue messages", malformed),
         ("packets dropped for lack of batch room", batchOverflowDrops),
         ("socket errors skipped (ICMP errors about packets sent)", socketErrors)]
    }
}
