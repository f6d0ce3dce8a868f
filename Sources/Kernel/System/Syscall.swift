// Syscall: the one wrapper every system call in Kernel goes through. It retries EINTR
// and reports errno. Control paths use `Syscall.check`, which throws a SystemError
// naming the call; packet paths use `Syscall.retry`, which returns an IOResult and never
// allocates or throws (an error existential would allocate).

#if canImport(Glibc)
import Glibc
#endif
import CEncShim

/// The outcome of one packet-path system call.
public enum IOResult: Equatable, Sendable {
    /// The call moved this many bytes (or returned this value).
    case done(Int)
    /// Non-blocking descriptor had nothing to give or no room to take (EAGAIN).
    case wouldBlock
    /// The call failed with this errno (not EINTR, not EAGAIN).
    case failed(Int32)

    public var count: Int? { if case .done(let n) = self { return n } else { return nil } }
}

public enum Syscall {
    /// Runs `body` until it returns something other than -1/EINTR.
    @inline(__always)
    public static func retry<T: BinaryInteger>(_ body: () -> T) -> IOResult {
        while true {
            let rc = body()
            if rc >= 0 { return .done(Int(rc)) }
            let e = encshim_errno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(e)
        }
    }

    /// Runs `body` like `retry`, throwing a SystemError named `call` on failure
    /// (EAGAIN included). `call` is only evaluated when the call fails.
    @discardableResult
    public static func check<T: BinaryInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws -> Int {
        switch retry(body) {
        case .done(let n): return n
        case .wouldBlock: throw SystemError(call(), errno: EAGAIN)
        case .failed(let e): throw SystemError(call(), errno: e)
        }
    }

    /// For library calls that return a pointer (NULL with errno on failure).
    public static func check<P>(_ call: @autoclosure () -> String, _ body: () -> P?) throws -> P {
        while true {
            if let p = body() { return p }
            let e = encshim_errno()
            if e == EINTR { continue }
            throw SystemError(call(), errno: e == 0 ? EINVAL : e)
        }
    }
}

/// Closes `fd`, ignoring errors (close must not be retried on Linux).
@inline(__always)
func closeDescriptor(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
}
