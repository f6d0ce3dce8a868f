// What one NFQUEUE packet brings besides its bytes, the verdicts encd gives back, and
// the preallocated batch packets are received into. Plain values: nothing here
// allocates per packet.

import EncCore

/// Metadata of one queued packet (the payload is in the batch's PacketBuffer).
public struct QueuedPacket: Equatable, Sendable {
    /// The kernel's id for the verdict.
    public var id: UInt32 = 0
    /// Netfilter hook (NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, ...).
    public var hook: UInt8 = 0
    /// Ethertype in host order: 0x0800 IPv4, 0x86dd IPv6.
    public var hwProtocol: UInt16 = 0
    public var mark: UInt32 = 0
    /// Input / output interface index; 0 when the hook has none.
    public var inInterface: UInt32 = 0
    public var outInterface: UInt32 = 0
    /// enum ip_conntrack_info and the conntrack mark, when the queue asks for conntrack
    /// data and the packet has an entry.
    public var conntrackInfo: UInt32? = nil
    public var conntrackMark: UInt32? = nil
    /// The link-layer source address (NFQA_HWADDR), 48 bits, for packets that arrived
    /// on an Ethernet-type device; nil otherwise.
    public var hardwareSource: UInt64? = nil
    /// The packet's length in the kernel; larger than the payload when it was cut to
    /// the copy range.
    public var originalLength: Int = 0
    /// NFQA_SKB_INFO flags (checksum not ready, GSO).
    public var skbInfo: UInt32 = 0

    /// The payload is shorter than the packet (copy range or NFQA_CAP_LEN).
    public var isTruncated = false

    public init() {}
}

/// A verdict for one queued packet.
public enum QueueVerdict: Equatable, Sendable {
    /// Let it continue with the next hook.
    case accept
    /// Drop it.
    case drop
    /// Let it continue with skb->mark replaced by the value (policy routing, [X] cache).
    case acceptWithMark(UInt32)
}

/// Preallocated room for one receive: `capacity` PacketBuffers and their metadata.
/// After `receive`, entries 0..<count are valid; payloads sit in `buffers[i]` with
/// at least `headroom` bytes in front. Owned by one worker; not thread-safe.
public final class QueueBatch {
    public let capacity: Int
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    @exclusivity(unchecked) public internal(set) var buffers: [PacketBuffer]
    public let headroom: Int
    @exclusivity(unchecked) public internal(set) var count: Int = 0
    private let storage: UnsafeMutableBufferPointer<QueuedPacket>

    public init(capacity: Int = 32, bufferCapacity: Int = PacketBuffer.defaultCapacity,
                headroom: Int = PacketBuffer.defaultHeadroom) {
        precondition(capacity > 0 && headroom >= 0 && bufferCapacity > headroom + 1024)
        self.capacity = capacity
        self.headroom = headroom
        self.buffers = (0..<capacity).map { _ in PacketBuffer(capacity: bufferCapacity, headroom: headroom) }
        storage = .allocate(capacity: capacity)
        storage.initialize(repeating: QueuedPacket())
    }

    deinit { storage.deallocate() }

    /// Metadata of packet `i` (0..<count).
    public subscript(i: Int) -> QueuedPacket {
        get { storage[i] }
        set { storage[i] = newValue }
    }
}
