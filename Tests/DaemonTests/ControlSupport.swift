import Config
import Control
import EncCore
import Foundation
import IPsec
import Kernel
@testable import Daemon

/// Records what a policy change asks of the kernel; can refuse on demand.
final class RecordingKernel: PolicyKernel {
    var prepared: [(generation: UInt64, natPort: UInt16)] = []
    var refuse = false
    func prepare(_ snapshot: PolicySnapshot, tunables: Tunables) throws {
        if refuse { throw DaemonError("nftables refused the set (test)") }
        prepared.append((snapshot.generation, tunables.udpEncapPort))
    }
    func applied(_ snapshot: PolicySnapshot) {}
}

/// A ControlPlane with a ControlServer on a real Unix socket in a temporary directory,
/// a configuration file for reload, one counter block standing in for the workers,
/// and every log line kept.
final class ControlFixture {
    let dir: String
    let confPath: String
    let socketPath: String
    let log = Log(level: .debug)
    let plane: ControlPlane
    let server: ControlServer
    let kernel = RecordingKernel()
    let stats = CounterBlock<Counter>()
    let clock = CoarseClock(start: 1000)
    let store = MemorySequenceStore()
    private let lines = LineStore()
    var logLines: [String] { lines.all }

    init(_ conf: String, local: [String] = ["192.0.2.1"], allowedUIDs: Set<uid_t> = [getuid()],
         requestTimeout: Int = 1, eventQueueLimit: Int = 256) throws {
        var template = Array("/tmp/encd-ctl-test.XXXXXX".utf8CString)
        guard let d = mkdtemp(&template) else { throw DaemonError("mkdtemp failed") }
        dir = String(cString: d)
        confPath = dir + "/ipsec.conf"
        socketPath = dir + "/encd.sock"
        try conf.write(toFile: confPath, atomically: true, encoding: .utf8); chmod(confPath, 0o600)
        let store = lines
        log.mirror = { store.append($0) }
        let addrs = Set(local.map { IPAddress($0)! })
        plane = ControlPlane(log: log, clock: clock, store: self.store, maxPolicy: MarkLayout.default.maxPolicy,
                             configFile: confPath, localAddresses: { addrs }, eventQueueLimit: eventQueueLimit)
        plane.kernel = kernel
        let block = stats
        plane.counterBlocks = { [block] }
        try plane.start(ConfigParser.load(path: confPath))
        server = ControlServer(path: socketPath, plane: plane, log: log, allowedUIDs: allowedUIDs,
                               requestTimeout: requestTimeout)
        try server.start()
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func call(_ r: Request) throws -> Response { try ControlClient(path: socketPath).call(r) }

    /// Sends raw bytes and reads the one reply.
    func raw(_ bytes: [UInt8]) throws -> Response? {
        let c = try ControlClient(path: socketPath)
        _ = bytes.withUnsafeBytes { write(c.fd, $0.baseAddress, $0.count) }
        return try Framing.receive(Response.self, from: c.fd)
    }

    /// A framed message with `json` as its body.
    static func frame(_ json: String) -> [UInt8] {
        let body = Array(json.utf8)
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
    }

    var snapshot: PolicySnapshot { plane.box.value }
}

final class LineStore: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ l: String) { lock.lock(); lines.append(l); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

let ctlEncKey1 = "0x" + String(repeating: "3c", count: 20)
let ctlEncKey2 = "0x" + String(repeating: "4d", count: 20)
let ctlAuthKey = "0x" + String(repeating: "5e", count: 32)
let ctlCBCKey = "0x" + String(repeating: "6f", count: 16)

/// gw1 (192.0.2.1) to gw2 (192.0.2.2): one flow pair, one SA pair.
let ctlSiteConf = """
flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey \(ctlEncKey1):\(ctlEncKey2)

"""

/// A second SA pair and flow, for loads.
let ctlExtraConf = """
flow esp from 198.18.1.0/24 to 198.18.3.0/24 local 192.0.2.1 peer 192.0.2.3 type require
esp tunnel from 192.0.2.1 to 192.0.2.3 spi 0x2000 auth hmac-sha2-256 enc aes-128 authkey \(ctlAuthKey) enckey \(ctlCBCKey)

"""

/// Every key in the configurations above, as hex without 0x.
let ctlAllKeys = [ctlEncKey1, ctlEncKey2, ctlAuthKey, ctlCBCKey].map { String($0.dropFirst(2)) }
