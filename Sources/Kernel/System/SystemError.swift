// SystemError: a failed system or library call, carrying errno and the call's name,
// printed the way an admin can act on: "open(/dev/net/tun): Permission denied (EACCES)".

#if canImport(Glibc)
import Glibc
#endif

public struct SystemError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The call and its main argument, e.g. "open(/dev/net/tun)".
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (\(SystemError.name(of: errno)))"
    }

    /// The symbolic name of an errno value ("EACCES"), or "errno N" when unknown.
    public static func name(of value: Int32) -> String {
        errnoNames[value] ?? "errno \(value)"
    }

    private static let errnoNames: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO",
        ENXIO: "ENXIO", E2BIG: "E2BIG", EBADF: "EBADF", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
        EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV",
        ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENFILE: "ENFILE",
        EMFILE: "EMFILE", ENOSPC: "ENOSPC", EPIPE: "EPIPE", ERANGE: "ERANGE",
        ENOTSOCK: "ENOTSOCK", EMSGSIZE: "EMSGSIZE", EPROTONOSUPPORT: "EPROTONOSUPPORT",
        EOPNOTSUPP: "EOPNOTSUPP", EAFNOSUPPORT: "EAFNOSUPPORT", EADDRINUSE: "EADDRINUSE",
        EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETDOWN: "ENETDOWN", ENETUNREACH: "ENETUNREACH",
        ENOBUFS: "ENOBUFS", ENOTCONN: "ENOTCONN", ETIMEDOUT: "ETIMEDOUT",
        ECONNREFUSED: "ECONNREFUSED", EHOSTUNREACH: "EHOSTUNREACH", ENOPROTOOPT: "ENOPROTOOPT",
        EPROTO: "EPROTO", EROFS: "EROFS", ELOOP: "ELOOP",  // ENOTSUP == EOPNOTSUPP on Linux
    ]
}

/// A configuration error the kernel glue detects before calling the kernel (bad mask,
/// name too long): what is wrong and how to fix it.
public struct KernelConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
