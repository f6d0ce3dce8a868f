// PacketDevice: the enc0 side of encd. Reads give packets the kernel routed to enc0;
// writes inject decrypted packets, which the kernel then sees arrive `iifname "enc0"`.
// Both calls are packet path: they return an IOResult and allocate nothing.

import EncCore

public protocol PacketDevice: AnyObject {
    /// Interface name, e.g. "enc0".
    var name: String { get }
    /// Descriptor for poll/epoll; -1 for fakes.
    var fileDescriptor: Int32 { get }
    /// Reads one packet into `buffer`, leaving `headroom` in front and at least
    /// `tailroom` behind it. On `.done(n)` the buffer holds the n-byte packet.
    func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult
    /// Writes the packet held by `buffer`.
    func write(from buffer: PacketBuffer) -> IOResult
}

extension PacketDevice {
    public func read(into buffer: PacketBuffer) -> IOResult {
        read(into: buffer, headroom: PacketBuffer.defaultHeadroom, tailroom: PacketBuffer.defaultHeadroom)
    }
}
