// encstat's command line: netstat's letters, getopt-style bundling, one-line errors.

import Control
import IPsec
import Testing

@Suite struct EncstatOptionsTests {
    @Test func bundledAndSeparateArgumentsParseAlike() throws {
        let a = try NetstatOptions.parse(["-ssp", "esp", "-S/tmp/x.sock"])
        #expect(a.statistics == 2 && a.hideZeros && a.group == .esp && a.socket == "/tmp/x.sock")
        let b = try NetstatOptions.parse(["-s", "-s", "-p", "esp", "-S", "/tmp/x.sock"])
        #expect(a == b)
        let w = try NetstatOptions.parse(["-w1", "-c", "3", "-j"])
        #expect(w.wait == 1 && w.count == 3 && w.json)
    }

    @Test func defaultsToEveryCounterOnTheStandardSocket() throws {
        let o = try NetstatOptions.parse([])
        #expect(o.showsCounters && o.groups == [.esp, .ah, .ipsec, .enc] && !o.hideZeros)
        #expect(o.socket == "/run/encd/encd.sock")
        let r = try NetstatOptions.parse(["-r"])
        #expect(!r.showsCounters)
    }

    @Test func badCommandLinesSayWhatIsWrong() {
        let cases: [([String], String)] = [
            (["-p", "tcp"], "unknown protocol \"tcp\" for -p"),
            (["-p"], "option -p needs an argument"),
            (["-x"], "unknown option -x"),
            (["-w", "0"], "-w needs a whole number of seconds above 0"),
            (["-c", "2"], "-c needs -w"),
            (["-w", "1", "-r"], "does not combine with -r or -a"),
            (["-o", "json"], "unknown output format \"json\""),
            (["-o", "prometheus", "-j"], "choose one"),
            (["-o", "prometheus", "-s"], "takes no -s"),
            (["stray"], "unexpected argument \"stray\""),
        ]
        for (args, message) in cases {
            do {
                _ = try NetstatOptions.parse(args)
                Issue.record("\(args) parsed")
            } catch {
                let text = "\(error)"
                #expect(text.contains(message), "\(args): \(text)")
                #expect(text.hasSuffix(NetstatOptions.usage))
            }
        }
    }
}
