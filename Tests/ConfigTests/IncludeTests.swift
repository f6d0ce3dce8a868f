// include: relative to the including file, macros shared, errors named by file, loops.

import Testing
import IPsec
@testable import Config

#if canImport(Glibc)
import Glibc
#endif

@Suite struct IncludeTests {
    @Test func includeIsRelativeToTheIncludingFile() throws {
        let files = [
            "/etc/encd/sites/a.conf": "include \"../common/peers.conf\"\nflow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer $gw\n",
            "/etc/encd/common/peers.conf": "gw = \"192.0.2.2\"\n",
        ]
        let c = try parse("include \"sites/a.conf\"\nflow esp out from 10.1.0.0/24 to 10.3.0.0/24 peer $gw\n", files: files)
        #expect(c.flows.map(\.peer) == [ip("192.0.2.2"), ip("192.0.2.2")])
    }

    @Test func errorsInIncludedFilesCarryTheirName() {
        let files = ["/etc/encd/inc.conf": "\n\nflow esp out from 10.1.0.0/24 to nowhere\n"]
        let all = errors("include \"inc.conf\"\nbad\n", files: files)
        #expect(all.map(\.description) == [
            "/etc/encd/inc.conf:3:34: host names are not resolved: use a numeric address instead of \"nowhere\"",
            "/etc/encd/ipsec.conf:2:1: expected a rule (\"flow\", \"esp\", \"ah\", \"set\", \"include\") or a macro definition at start of line, found \"bad\"",
        ])
    }

    @Test func missingIncludeIsAnErrorAtTheFileName() {
        let e = error("include \"nope.conf\"\n")
        #expect(e?.description == "/etc/encd/ipsec.conf:1:9: failed to include file /etc/encd/nope.conf: No such file or directory")
    }

    @Test func includeLoopIsDetected() {
        let files = ["/etc/encd/a.conf": "include \"b.conf\"\n", "/etc/encd/b.conf": "include \"a.conf\"\n"]
        let e = error("include \"a.conf\"\n", files: files)
        #expect(e?.message == "include loop: /etc/encd/a.conf -> /etc/encd/b.conf -> /etc/encd/a.conf")
        #expect(e?.file == "/etc/encd/b.conf" && e?.line == 1 && e?.column == 9)
    }

    @Test func selfIncludeIsALoop() {
        let e = error("include \"ipsec.conf\"\n")
        #expect(e?.message == "include loop: /etc/encd/ipsec.conf -> /etc/encd/ipsec.conf")
    }

    @Test func loadReadsFromDiskWithIncludesAndKeyFiles() throws {
        var template = Array("/tmp/encd-config-test-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer {
            for f in ["ipsec.conf", "inc.conf", "ak"] { unlink(dir + "/" + f) }
            rmdir(dir)
        }
        func write(_ name: String, _ text: String, mode: mode_t = 0o600) {
            let f = fopen(dir + "/" + name, "w")!
            fputs(text, f)
            fclose(f)
            chmod(dir + "/" + name, mode)
        }
        write("ak", String(authK1.dropFirst(2)) + "\n")
        write("inc.conf", "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey file \"ak\" enckey \(encK1)\n")
        write("ipsec.conf", "include \"inc.conf\"\nflow esp from 10.1.0.0/24 to 10.2.0.0/24 peer $p\n", mode: 0o644)
        let c = try ConfigParser.load(path: dir + "/ipsec.conf", defines: ["p": "192.0.2.2"])
        #expect(c.flows.count == 2 && c.sas.count == 1)
        #expect(c.sas[0].integrityKey?.bits == 256)

        // As ipsecctl: a file others may write is refused; one holding keys (literal or
        // a key file) may not be readable by others. The main file holds no key: 0644 is fine.
        func refusal() -> [String] {
            do {
                _ = try ConfigParser.load(path: dir + "/ipsec.conf", defines: ["p": "192.0.2.2"])
                return []
            } catch let e as ConfigErrors { return e.errors.map(\.description) } catch { return ["\(error)"] }
        }
        chmod(dir + "/inc.conf", 0o644)
        #expect(refusal() == ["\(dir)/inc.conf: holds keys and is readable by anyone (mode 0644): refused, fix with chmod o-rwx \(dir)/inc.conf"])
        chmod(dir + "/inc.conf", 0o640)            // group read: allowed
        chmod(dir + "/ak", 0o604)
        #expect(refusal() == ["\(dir)/ak: holds keys and is readable by anyone (mode 0604): refused, fix with chmod o-rwx \(dir)/ak"])
        chmod(dir + "/ak", 0o600)
        chmod(dir + "/ipsec.conf", 0o664)
        #expect(refusal() == ["\(dir)/ipsec.conf: writable by its group (mode 0664): refused, fix with chmod go-w \(dir)/ipsec.conf"])
        chmod(dir + "/ipsec.conf", 0o646)
        #expect(refusal().first?.contains("writable by anyone (mode 0646)") == true)
        chmod(dir + "/ipsec.conf", 0o644)
        #expect(refusal().isEmpty)
    }
}
