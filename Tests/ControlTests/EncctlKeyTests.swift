// No key reaches encctl's output (stdout or stderr) without -k: not in -nv listings,
// not in -s at any verbosity, not in configuration errors about a bad key, not even
// when the daemon wrongly sends keys it was not asked for. With -k they do appear
// (the positive control that keeps this test able to fail).

import Foundation
import Testing
@testable import Control

@Suite(.serialized) struct EncctlKeyTests {
    func assertNoKey(_ r: (status: Int32, out: String, err: String), _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        for k in TestKeys.all {
            #expect(!r.out.contains(k) && !r.err.contains(k), "\(what) printed a key", sourceLocation: sourceLocation)
            // Also no recognisable part of one (a key cut at a line end, say).
            #expect(!r.out.contains(k.prefix(16)) && !r.err.contains(k.prefix(16)), "\(what)", sourceLocation: sourceLocation)
        }
        #expect(!r.out.contains("authkey") && !r.out.contains("enckey"), "\(what)", sourceLocation: sourceLocation)
    }

    @Test func noKeyWithoutKInAnyOutput() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        // A daemon that puts keys into every SA's text, asked or not.
        let encd = try FakeEncd { r in
            switch r.command {
            case .show: return [.show(flows: try! goldenFlows(), sas: try! goldenSAs(showKeys: true))]
            default: return [Response()]
            }
        }
        defer { encd.stop() }
        for args in [["-nvf", tree.main], ["-nvvf", tree.main], ["-vf", tree.main], ["-dvf", tree.main],
                     ["-s", "all"], ["-s", "sa"], ["-vs", "sa"], ["-vvs", "all"], ["-F", "-vf", tree.main, "-s", "a"]] {
            let r = encctl(args, socket: encd.path)
            #expect(r.status == 0, "\(args)")
            assertNoKey(r, "\(args)")
        }
        // What went to encd carries the keys (it must, to install the SAs).
        #expect(encd.requests.contains { $0.config?.contains(TestKeys.auth1) == true })
    }

    @Test func noKeyInErrorsAboutKeys() throws {
        let dir = NSTemporaryDirectory() + "encctl-keyerr-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A key one byte short, a key for an algorithm that takes none, a key that is
        // not hex: each an error that must describe the key, not quote it.
        try """
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(TestKeys.auth1.dropLast(2)) enckey \(TestKeys.enc1)
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1001 enc aes-128-gcm authkey \(TestKeys.auth2) enckey \(TestKeys.gcm1)
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1002 authkey \(TestKeys.sha1)zz enckey \(TestKeys.enc2)
            """.write(toFile: dir + "/keys.conf", atomically: true, encoding: .utf8); chmod(dir + "/keys.conf", 0o600)
        for args in [["-nf", dir + "/keys.conf"], ["-nvf", dir + "/keys.conf"], ["-nvkf", dir + "/keys.conf"]] {
            let r = encctl(args)
            #expect(r.status == 1, "\(args)")
            #expect(r.err.split(separator: "\n").count >= 4, "\(args): \(r.err)")
            assertNoKey(r, "\(args)")
        }
    }

    @Test func keysAppearWithK() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { r in [.show(flows: [], sas: try! goldenSAs(showKeys: r.showKeys == true))] }
        defer { encd.stop() }
        let listing = encctl(["-nvkf", tree.main])
        #expect(listing.out.contains(TestKeys.auth1) && listing.out.contains(TestKeys.enc2))
        let show = encctl(["-k", "-s", "sa"], socket: encd.path)
        #expect(show.out.contains("\tauthkey \(TestKeys.auth1)") && show.out.contains("\tenckey \(TestKeys.gcm2)"))
    }
}
