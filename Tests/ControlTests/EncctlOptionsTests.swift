// encctl's command line against ipsecctl(8)'s getopt behaviour: grouped flags,
// attached arguments, -s prefixes (first match in flow, sa, all), repeated options,
// the refusals that print the usage line, and the exit status 64 for them.

import Testing
@testable import Control

@Suite struct EncctlOptionsTests {
    @Test func showAcceptsEveryUniquePrefix() throws {
        for (arg, want) in [("f", ShowTarget.flow), ("fl", .flow), ("flo", .flow), ("flow", .flow),
                            ("s", .sa), ("sa", .sa), ("a", .all), ("al", .all), ("all", .all)] {
            #expect(try EncctlOptions.parse(["-s", arg]).show == want, "\(arg)")
        }
        // "-sa" is -s with "a" attached: all, as with ipsecctl.
        #expect(try EncctlOptions.parse(["-sa"]).show == .all)
        #expect(try EncctlOptions.parse(["-ssa"]).show == .sa)
        #expect(try EncctlOptions.parse(["-sf"]).show == .flow)
    }

    @Test func showRefusesWhatIsNotAPrefix() {
        for arg in ["", "flows", "x", "sad", "alll", "F"] {
            #expect(throws: EncctlUsageError("Unknown show modifier '\(arg)'")) { try EncctlOptions.parse(["-s", arg]) }
        }
    }

    @Test func flagsGroupAndArgumentsAttach() throws {
        let o = try EncctlOptions.parse(["-nvvkf", "ipsec.conf", "-DA=1", "-D", "b_2=x=y", "-Ssock"])
        #expect(o.noAction && o.showKeys && o.verbose == 2)
        #expect(o.file == "ipsec.conf")
        #expect(o.defines == ["A": "1", "b_2": "x=y"])
        #expect(o.socket == "sock")
        #expect(try EncctlOptions.parse(["-ffile"]).file == "file")
        #expect(try EncctlOptions.parse(["-f", "-"]).file == "-")
    }

    @Test func defaultsAreTheDocumentedOnes() throws {
        let o = try EncctlOptions.parse(["-F"])
        #expect(o.flush && !o.noAction && !o.delete && !o.monitor && !o.showKeys && o.verbose == 0)
        #expect(o.socket == "/run/encd/encd.sock")
        #expect(o.file == nil && o.show == nil && o.tunables.isEmpty)
    }

    @Test func laterFileAndShowWinAsWithGetopt() throws {
        let o = try EncctlOptions.parse(["-f", "a", "-s", "f", "-f", "b", "-s", "s"])
        #expect(o.file == "b" && o.show == .sa)
    }

    @Test func everyIpsecctlCombinationIsAccepted() throws {
        // ipsecctl refuses no combination: -F, -f, -s and -m run in that order.
        let o = try EncctlOptions.parse(["-dFkmnv", "-f", "x", "-s", "all"])
        #expect(o.delete && o.flush && o.showKeys && o.monitor && o.noAction && o.show == .all)
    }

    @Test func badDefineIsAWarningNotAnError() throws {
        let o = try EncctlOptions.parse(["-D", "novalue", "-D", "=x", "-D", "bad-name=1", "-n"])
        #expect(o.defines.isEmpty)
        #expect(o.warnings == ["could not parse macro definition novalue", "could not parse macro definition =x",
                               "could not parse macro definition bad-name=1"])
    }

    @Test func tunableArguments() throws {
        let o = try EncctlOptions.parse(["-T", "ipsec.replay_window=64", "-Tnet.inet.esp"])
        #expect(o.tunables == [TunableArgument(name: "ipsec.replay_window", value: "64"),
                               TunableArgument(name: "net.inet.esp", value: nil)])
    }

    @Test func refusalsCarryIpsecctlsMessages() {
        #expect(throws: EncctlUsageError(nil)) { try EncctlOptions.parse([]) }
        #expect(throws: EncctlUsageError("unknown option -- x")) { try EncctlOptions.parse(["-x"]) }
        #expect(throws: EncctlUsageError("unknown option -- c")) { try EncctlOptions.parse(["-c"]) }
        #expect(throws: EncctlUsageError("option requires an argument -- f")) { try EncctlOptions.parse(["-n", "-f"]) }
        #expect(throws: EncctlUsageError("option requires an argument -- s")) { try EncctlOptions.parse(["-s"]) }
        #expect(throws: EncctlUsageError("unknown command line argument: flow ...")) { try EncctlOptions.parse(["-s", "all", "flow"]) }
        #expect(throws: EncctlUsageError("unknown command line argument: - ...")) { try EncctlOptions.parse(["-n", "-"]) }
        #expect(throws: EncctlUsageError("unknown command line argument: -v ...")) { try EncctlOptions.parse(["--", "-v"]) }
    }

    @Test func usageErrorsPrintTheUsageLineAndExit64() {
        let r = encctl(["-s", "bogus"])
        #expect(r.status == 64)
        #expect(r.out == "")
        #expect(r.err == "encctl: Unknown show modifier 'bogus'\n" + EncctlOptions.usage + "\n")
        let bare = encctl([])
        #expect(bare.status == 64 && bare.err == EncctlOptions.usage + "\n")
        #expect(EncctlOptions.usage
            == "usage: encctl [-dFkmnv] [-D macro=value] [-f file] [-S socket] [-s modifier] [-T name[=value]]")
    }
}
