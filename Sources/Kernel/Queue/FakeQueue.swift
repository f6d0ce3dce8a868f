// FakeQueue: an in-memory PacketQueue for tests of the daemon without root. Tests
// `enqueue` packets with their metadata; `receive` hands them out in order and every
// verdict is recorded (with the replacement payload, if any). Ids are assigned from 1
// like the kernel's. Not thread-safe; allocates (tests only).

import EncCore

public final class FakeQueue: PacketQueue {
    public struct RecordedVerdict: Equatable {
        public var id: UInt32
        public var verdict: QueueVerdict
        public var payload: [UInt8]?
    }

    public let number: UInt16
    public var fileDescriptor: Int32 { -1 }
    public private(set) var counters = QueueCounters()
    /// Verdicts sent with `flushVerdicts`, oldest first.
    public private(set) var verdicts: [RecordedVerdict] = []
    /// Verdicts set but not yet flushed.
    public private(set) var unflushed: [RecordedVerdict] = []
    private var pending: [(QueuedPacket, [UInt8])] = []
    private var nextID: UInt32 = 1

    public init(number: UInt16 = 0) { self.number = number }

    /// Queues `packet` as the kernel would; `meta.id` is assigned and returned.
    @discardableResult
    public func enqueue(_ packet: [UInt8], meta: QueuedPacket = QueuedPacket()) -> UInt32 {
        var m = meta
        m.id = nextID
        nextID += 1
        if m.originalLength == 0 { m.originalLength = packet.count }
        if m.hwProtocol == 0, let v = packet.first { m.hwProtocol = v >> 4 == 6 ? 0x86dd : 0x0800 }
        pending.append((m, packet))
        return m.id
    }

    /// Counts `n` reads the queue itself drops as unreadable (a netlink message that is
    /// not a packet, a raw read cut short), as a real reader counts them.
    public func dropUnreadable(_ n: UInt64) {
        counters.malformed += n
    }

    public func receive(into batch: QueueBatch, wait: Bool) -> IOResult {
        batch.count = 0
        guard !pending.isEmpty else { return .wouldBlock }
        var n = 0
        while n < batch.capacity, !pending.isEmpty {
            let (meta, bytes) = pending.removeFirst()
            batch.buffers[n].load(bytes, headroom: batch.headroom)
            batch[n] = meta
            n += 1
        }
        batch.count = n
        counters.received += UInt64(n)
        return .done(n)
    }

    public func setVerdict(_ verdict: QueueVerdict, id: UInt32, payload: PacketBuffer?) -> IOResult {
        unflushed.append(RecordedVerdict(id: id, verdict: verdict, payload: payload?.array))
        return .done(0)
    }

    public func flushVerdicts() -> IOResult {
        verdicts.append(contentsOf: unflushed)
        unflushed.removeAll()
        return .done(0)
    }
}
