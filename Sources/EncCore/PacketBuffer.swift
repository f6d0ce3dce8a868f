// PacketBuffer: one preallocated region holding one packet with headroom in front and
// tailroom behind, so encapsulation prepends headers and appends trailers in place.
//
// A worker owns its buffers and reuses them for every packet; nothing here allocates
// after init. Not thread-safe: one buffer belongs to one worker at a time.

public final class PacketBuffer {
    /// Total bytes owned, headroom + packet + tailroom.
    public let capacity: Int
    /// First byte of the owned region; stable for the buffer's life.
    public let base: UnsafeMutableRawPointer
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    /// Offset of the packet's first byte in the owned region.
    @exclusivity(unchecked) public private(set) var start: Int
    /// Offset one past the packet's last byte.
    @exclusivity(unchecked) public private(set) var end: Int

    /// Room for the largest IP packet plus encapsulation on both sides by default.
    public static let defaultCapacity = 65_535 + 2 * defaultHeadroom
    public static let defaultHeadroom = 256

    public init(capacity: Int = PacketBuffer.defaultCapacity, headroom: Int = PacketBuffer.defaultHeadroom) {
        precondition(capacity > 0 && headroom >= 0 && headroom <= capacity)
        self.capacity = capacity
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        self.base.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
        self.start = headroom
        self.end = headroom
    }

    deinit { base.deallocate() }

    public var count: Int { end - start }
    public var headroom: Int { start }
    public var tailroom: Int { capacity - end }

    /// The packet's bytes. Valid until the next prepend/append/trim.
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + start, count: end - start)
    }

    /// Empties the buffer, leaving `headroom` bytes in front for later prepends.
    public func reset(headroom: Int = PacketBuffer.defaultHeadroom) {
        precondition(headroom >= 0 && headroom <= capacity)
        start = headroom
        end = headroom
    }

    /// Sets the packet length after a read into `base + start` (e.g. recv into the buffer).
    /// Returns false, changing nothing, when `length` does not fit.
    @discardableResult
    public func setCount(_ length: Int) -> Bool {
        guard length >= 0, start + length <= capacity else { return false }
        end = start + length
        return true
    }

    /// Replaces the contents with `source`. Returns false when it does not fit.
    @discardableResult
    public func load(_ source: UnsafeRawBufferPointer, headroom: Int = PacketBuffer.defaultHeadroom) -> Bool {
        guard headroom >= 0, headroom + source.count <= capacity else { return false }
        start = headroom
        end = headroom + source.count
        if let src = source.baseAddress, source.count > 0 {
            (base + start).copyMemory(from: src, byteCount: source.count)
        }
        return true
    }

    /// Replaces the contents with `bytes` (tests, control path; not the packet path).
    @discardableResult
    public func load(_ bytes: [UInt8], headroom: Int = PacketBuffer.defaultHeadroom) -> Bool {
        bytes.withUnsafeBytes { load($0, headroom: headroom) }
    }

    /// Grows the packet by `n` bytes at the front; the new bytes are uninitialised.
    /// Returns false, changing nothing, when the headroom is too small.
    @discardableResult
    public func prepend(_ n: Int) -> Bool {
        guard n >= 0, n <= start else { return false }
        start -= n
        return true
    }

    /// Grows the packet by `n` bytes at the back. Returns false when the tailroom is too small.
    @discardableResult
    public func append(_ n: Int) -> Bool {
        guard n >= 0, n <= capacity - end else { return false }
        end += n
        return true
    }

    /// Drops `n` bytes from the front. Returns false when the packet is shorter.
    @discardableResult
    public func trimFront(_ n: Int) -> Bool {
        guard n >= 0, n <= count else { return false }
        start += n
        return true
    }

    /// Drops `n` bytes from the back. Returns false when the packet is shorter.
    @discardableResult
    public func trimBack(_ n: Int) -> Bool {
        guard n >= 0, n <= count else { return false }
        end -= n
        return true
    }

    /// Moves the first `length` bytes of the packet `by` bytes towards the front
    /// (negative) or back (positive), used to open or close a gap after an IP header
    /// in transport mode. The packet's start moves with them; the bytes after
    /// `length` stay where they are. Returns false when the move leaves the region.
    @discardableResult
    public func shiftFront(length: Int, by delta: Int) -> Bool {
        guard length >= 0, length <= count, start + delta >= 0, start + delta + length <= capacity else {
            return false
        }
        (base + start + delta).copyMemory(from: base + start, byteCount: length)
        start += delta
        return true
    }

    /// A copy of the packet bytes (tests and control path only).
    public var array: [UInt8] { Array(UnsafeRawBufferPointer(bytes)) }
}

// Big-endian field access on raw packet memory. Callers check bounds first; these
// functions trap on nothing and read unaligned memory safely.
extension UnsafeMutableRawBufferPointer {
    @inline(__always) public func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) public func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inline(__always) public func be64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    @inline(__always) public func setBE16(_ offset: Int, _ value: UInt16) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inline(__always) public func setBE32(_ offset: Int, _ value: UInt32) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
    @inline(__always) public func setBE64(_ offset: Int, _ value: UInt64) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) public func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) public func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
