// Comments, continuation lines, quoting, macros and -D, as ipsecctl's lexer has them.

import Testing
import EncCore
import IPsec
@testable import Config

@Suite struct LexicalTests {
    @Test func commentsAndBlankLinesAreIgnored() throws {
        let c = try parse("""
            # a comment line

            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 # trailing comment
               \t
            """)
        #expect(c.flows.count == 1)
        #expect(c.flows[0].peer == ip("192.0.2.2"))
    }

    @Test func backslashNewlineContinuesTheLine() throws {
        let c = try parse("flow esp out from 10.1.0.0/24 \\\n    to 10.2.0.0/24 \\\n    peer 192.0.2.2\n")
        #expect(c.flows.count == 1)
        #expect(c.flows[0].destination == net("10.2.0.0/24"))
    }

    @Test func continuationKeepsPhysicalLineNumbersInErrors() {
        let e = error("flow esp out from 10.1.0.0/24 \\\n  to 10.2.0.0/24 \\\n  bogus\n")
        #expect(e?.line == 3)
        #expect(e?.column == 3)
    }

    @Test func macroExpandsInPlace() throws {
        let c = try parse("""
            local_net = "10.1.0.0/24"
            remote = "192.0.2.2"
            flow esp out from $local_net to 10.2.0.0/24 peer $remote
            """)
        #expect(c.flows[0].source == net("10.1.0.0/24"))
        #expect(c.flows[0].peer == ip("192.0.2.2"))
    }

    @Test func macroValueMayHoldSeveralTokens() throws {
        let c = try parse("""
            nets = "{ 10.1.0.0/24, 10.3.0.0/24 }"
            opts = "peer 192.0.2.2 type use"
            flow esp out from $nets to 10.2.0.0/24 $opts
            """)
        #expect(c.flows.count == 2)
        #expect(c.flows.allSatisfy { $0.type == .use })
    }

    @Test func unquotedMacroWordsAreJoinedWithSpaces() throws {
        let c = try parse("""
            peers = peer 192.0.2.2
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 $peers
            """)
        #expect(c.flows[0].peer == ip("192.0.2.2"))
    }

    @Test func commandLineDefineWinsOverFile() throws {
        let text = """
            remote = "192.0.2.2"
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer $remote
            """
        #expect(try parse(text).flows[0].peer == ip("192.0.2.2"))
        #expect(try parse(text, defines: ["remote": "198.51.100.7"]).flows[0].peer == ip("198.51.100.7"))
    }

    @Test func laterDefinitionReplacesEarlier() throws {
        let c = try parse("""
            p = "192.0.2.2"
            p = "192.0.2.3"
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer $p
            """)
        #expect(c.flows[0].peer == ip("192.0.2.3"))
    }

    @Test func undefinedMacroIsReportedAtTheDollar() {
        let e = error("flow esp out from 10.1.0.0/24 to $nowhere peer 192.0.2.2\n")
        #expect(e?.message == "macro 'nowhere' not defined")
        #expect(e?.line == 1 && e?.column == 34)
    }

    @Test func errorInsideMacroPointsAtItsUse() {
        let e = error("""
            bad = "10.1.0.0/24 too"
            flow esp out from $bad 10.2.0.0/24 peer 192.0.2.2
            """)
        #expect(e?.line == 2 && e?.column == 19)
        #expect(e?.message == "expected \"to\" after source address, found \"too\"")
    }

    @Test func quotedStringsKeepSpacesAndEscapedQuotes() throws {
        let c = try parse("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 srcid \"a \\\"b\\\" c\" dstid 'x y'\n")
        #expect(c.flows[0].sourceID == "a \"b\" c")
        #expect(c.flows[0].destinationID == "x y")
    }

    @Test func unterminatedQuoteIsReportedAtItsStart() {
        let e = error("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 srcid \"abc\n")
        #expect(e?.message == "reached end of file while parsing quoted string")
        #expect(e?.line == 1 && e?.column == 67)
    }

    @Test func keywordCannotNameAMacro() {
        let e = error("flow = \"x\"\n")
        #expect(e?.message == "\"flow\" is a keyword and cannot name a macro")
    }

    @Test func quotedKeywordIsNotAKeyword() {
        let e = error("\"flow\" esp out from 10.1.0.0/24 to 10.2.0.0/24\n")
        #expect(e?.message.hasPrefix("expected a rule") == true)
        #expect(e?.column == 1)
    }

    @Test func defineArgumentsSplitAtFirstEquals() {
        #expect(ConfigParser.parseDefine("peer=192.0.2.1")! == ("peer", "192.0.2.1"))
        #expect(ConfigParser.parseDefine("x=a=b")! == ("x", "a=b"))
        #expect(ConfigParser.parseDefine("noequals") == nil)
        #expect(ConfigParser.parseDefine("bad-name=1") == nil)
    }

    @Test func invalidDefineNameIsRefused() {
        let all = errors("", defines: ["a.b": "1"])
        #expect(all.first?.message == "macro name \"a.b\" may contain only letters, digits and _")
    }
}
