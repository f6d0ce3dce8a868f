// Framing on a stream socket: 4-byte big-endian length, then JSON. Shared by the
// daemon's server and the tools' client. A frame larger than the limit, a short read
// or bad JSON is an error the caller reports; nothing here traps.

import Foundation

public struct ControlError: Error, CustomStringConvertible {
    public let description: String
    /// The whole message did not arrive within the time allowed.
    public let timedOut: Bool
    public init(_ d: String, timedOut: Bool = false) {
        description = d
        self.timedOut = timedOut
    }
}

public enum Framing {
    /// Writes one message; throws on a short write.
    public static func send<T: Encodable>(_ value: T, to fd: Int32) throws {
        let body = try JSONEncoder().encode(value)
        guard body.count <= ControlProtocol.maximumMessage else { throw ControlError("message too large (\(body.count) bytes)") }
        var frame = Data(count: 4)
        frame.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(body.count).bigEndian, as: UInt32.self) }
        frame.append(body)
        try frame.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw ControlError("write: \(String(cString: strerror(errno)))") }
                off += n
            }
        }
    }

    /// Reads one message; nil at a clean end of stream before any byte. With `within`,
    /// the whole message must arrive in that many seconds, however it is trickled
    /// (a per-read timeout alone would restart with every byte).
    public static func receive<T: Decodable>(_ type: T.Type, from fd: Int32, within seconds: Int? = nil) throws -> T? {
        let deadline = seconds.map { monotonicMilliseconds() + Int64($0) * 1000 }
        var header = [UInt8](repeating: 0, count: 4)
        guard try readFully(fd, &header, allowEOF: true, deadline: deadline) else { return nil }
        let length = Int(UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3]))
        guard length <= ControlProtocol.maximumMessage else {
            throw ControlError("message of \(length) bytes is over the \(ControlProtocol.maximumMessage)-byte limit")
        }
        var body = [UInt8](repeating: 0, count: length)
        // A request may carry keys (encctl -f): wipe the bytes once decoded.
        defer { body.withUnsafeMutableBytes { if let p = $0.baseAddress { explicit_bzero(p, $0.count) } } }
        guard try readFully(fd, &body, allowEOF: false, deadline: deadline) else { throw ControlError("connection closed mid-message") }
        do {
            return try body.withUnsafeMutableBytes { b in
                try JSONDecoder().decode(T.self, from: Data(bytesNoCopy: b.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 1)!,
                                                            count: b.count, deallocator: .none))
            }
        } catch {
            throw ControlError("malformed message: \(error)")
        }
    }

    static func monotonicMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    private static func readFully(_ fd: Int32, _ buf: inout [UInt8], allowEOF: Bool, deadline: Int64? = nil) throws -> Bool {
        var off = 0
        while off < buf.count {
            if let deadline {
                let left = deadline - monotonicMilliseconds()
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = left > 0 ? poll(&p, 1, Int32(min(left, Int64(Int32.max)))) : 0
                if r < 0 && errno == EINTR { continue }
                if r == 0 { throw ControlError("the request did not arrive in time", timedOut: true) }
            }
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw ControlError("read: \(String(cString: strerror(errno)))") }
            if n == 0 {
                if off == 0 && allowEOF { return false }
                throw ControlError("connection closed mid-message")
            }
            off += n
        }
        return true
    }
}

/// A client connection to encd's control socket.
public final class ControlClient {
    public let fd: Int32

    /// Connects; the error says whether encd is not running or access is denied.
    /// `daemon` names who is not running in the error (encd, or encd-iked for ikectl).
    public init(path: String = ControlProtocol.defaultSocket, daemon: String = "encd") throws {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(s)
            throw ControlError("control socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            let e = errno
            close(s)
            switch e {
            case ENOENT, ECONNREFUSED: throw ControlError("\(daemon) is not running (no daemon at \(path))")
            case EACCES, EPERM: throw ControlError("permission denied on \(path) (\(daemon)'s control socket is for root)")
            default: throw ControlError("cannot connect to \(path): \(String(cString: strerror(e)))")
            }
        }
        fd = s
    }

    deinit { close(fd) }

    /// Sends a request and reads its response.
    public func call(_ request: Request) throws -> Response {
        do {
            try Framing.send(request, to: fd)
        } catch {
            // encd may have answered and closed before reading (too many connections:
            // "encd is busy"): that answer says more than the broken pipe.
            if let early = try? Framing.receive(Response.self, from: fd) { return early }
            throw error
        }
        guard let r = try Framing.receive(Response.self, from: fd) else { throw ControlError("encd closed the connection") }
        return r
    }

    /// For monitor: the next response, nil when encd closed the stream.
    public func next() throws -> Response? { try Framing.receive(Response.self, from: fd) }
}
