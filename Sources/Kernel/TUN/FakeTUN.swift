// FakeTUN: an in-memory PacketDevice for tests of the daemon without root. Packets the
// test queues with `deliver` come out of `read`; everything written is recorded in
// `written`. Not thread-safe; it allocates (tests only).

#if canImport(Glibc)
import Glibc
#endif
import EncCore

public final class FakeTUN: PacketDevice {
    public let name: String
    public var fileDescriptor: Int32 { -1 }
    /// Packets written by encd, oldest first.
    public private(set) var written: [[UInt8]] = []
    /// Packets waiting to be read, oldest first.
    public private(set) var pending: [[UInt8]] = []
    /// When set, writes fail with this errno (e.g. ENOBUFS) and are not recorded.
    public var failWrites: Int32?

    public init(name: String = "enc0") { self.name = name }

    /// Makes `packet` the next thing `read` returns (after those already pending).
    public func deliver(_ packet: [UInt8]) { pending.append(packet) }

    public func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult {
        guard !pending.isEmpty else { return .wouldBlock }
        let packet = pending.removeFirst()
        guard headroom + packet.count + tailroom <= buffer.capacity else { return .failed(EMSGSIZE) }
        buffer.load(packet, headroom: headroom)
        return .done(packet.count)
    }

    public func write(from buffer: PacketBuffer) -> IOResult {
        if let e = failWrites { return .failed(e) }
        written.append(buffer.array)
        return .done(buffer.count)
    }
}
