// PeerCredentials: who is on the other end of a Unix stream socket (SO_PEERCRED), for
// the control socket's access check.

import CEncShim

public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    /// The peer of the connected Unix socket `fd`; throws naming getsockopt on failure.
    public static func of(_ fd: Int32) throws -> PeerCredentials {
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        _ = try Syscall.check("getsockopt(SO_PEERCRED)") { encshim_peer_cred(fd, &pid, &uid, &gid) }
        return PeerCredentials(pid: pid, uid: uid, gid: gid)
    }
}
