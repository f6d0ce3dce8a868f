// SystemdNotify: the sd_notify(3) datagram protocol, spoken without libsystemd. When
// systemd starts encd with Type=notify it names a socket in $NOTIFY_SOCKET (a path,
// or "@name" in the abstract namespace); encd sends "READY=1" once enc0, the table,
// the routes and the control socket exist, "RELOADING=1" and "READY=1" around a
// reload, "STOPPING=1" on the way out, and "WATCHDOG=1" while every worker is alive
// ($WATCHDOG_USEC says how often systemd expects it). Without $NOTIFY_SOCKET every
// call does nothing.

#if canImport(Glibc)
import Glibc
#endif
import Foundation

public final class SystemdNotify: @unchecked Sendable {
    private let path: String?
    /// How often systemd wants WATCHDOG=1 (nil: no watchdog); encd sends at half that.
    public let watchdogInterval: Double?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        var interval: Double?
        if let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0,
           environment["WATCHDOG_PID"].map({ $0 == "\(getpid())" }) ?? true {
            interval = Double(usec) / 1_000_000
        }
        watchdogInterval = interval
    }

    public var enabled: Bool { path != nil }

    public func ready(_ status: String) { send("READY=1\nSTATUS=\(status)") }
    public func reloading() { send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())") }
    public func stopping() { send("STOPPING=1") }
    public func watchdog() { send("WATCHDOG=1") }
    public func status(_ text: String) { send("STATUS=\(text)") }

    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// One datagram; errors are ignored (systemd may be gone, as sd_notify does).
    @discardableResult
    public func send(_ message: String) -> Bool {
        guard let path else { return false }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }          // abstract namespace
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let body = Array(message.utf8)
        let sent = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                body.withUnsafeBytes { b in sendto(fd, b.baseAddress, b.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return sent == body.count
    }
}
