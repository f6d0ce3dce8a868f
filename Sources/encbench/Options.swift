// encbench's command line: `encbench [--packets N] [--size BYTES] [--runs R]
// [--ring K] [--markdown]`. Bad arguments are reported with the flag and the fix.

struct Options {
    /// Packets per timed run.
    var packets = 200_000
    /// Inner IP packet size in bytes (IPv4 + UDP + payload).
    var size = 1400
    /// Timed runs per case; the median is reported.
    var runs = 5
    /// Distinct pre-encrypted packets the decrypt benchmarks cycle through.
    var ring = 256
    /// Print the table as Markdown (for Docs/benchmarks.md).
    var markdown = false
    /// Run only the rows whose "protocol operation algorithm" contains this text.
    var only: String?

    static let usage = "usage: encbench [--packets N] [--size BYTES] [--runs R] [--ring K] [--only TEXT] [--markdown]"

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ args: [String]) throws -> Options {
        var o = Options()
        var i = 0
        func value(_ flag: String, _ range: ClosedRange<Int>) throws -> Int {
            i += 1
            guard i < args.count else { throw Failure(description: "\(flag) needs a number\n\(usage)") }
            guard let v = Int(args[i]), range.contains(v) else {
                throw Failure(description: "\(flag) \(args[i]): give a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        while i < args.count {
            switch args[i] {
            case "--packets": o.packets = try value("--packets", 1...1_000_000_000)
            case "--size": o.size = try value("--size", 28...65_000)
            case "--runs": o.runs = try value("--runs", 1...1000)
            case "--ring": o.ring = try value("--ring", 1...65_536)
            case "--markdown": o.markdown = true
            case "--only":
                i += 1
                guard i < args.count else { throw Failure(description: "--only needs a text, e.g. --only \"ESP decrypt aes-128-gcm\"") }
                o.only = args[i]
            case "-h", "--help": throw Failure(description: usage)
            default: throw Failure(description: "unknown argument \(args[i])\n\(usage)")
            }
            i += 1
        }
        return o
    }
}
