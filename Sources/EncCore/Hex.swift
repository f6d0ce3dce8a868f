// Hex text for keys, golden bytes and control output (never on the packet path).

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hex digits, ignoring white space; nil on an odd count or a non-hex digit.
    public static func decode(_ text: String) -> [UInt8]? {
        var out = [UInt8]()
        var high: Int? = nil
        for ch in text.unicodeScalars {
            if ch == " " || ch == "\n" || ch == "\t" { continue }
            guard let v = Character(ch).hexDigitValue else { return nil }
            if let h = high { out.append(UInt8(h << 4 | v)); high = nil } else { high = v }
        }
        return high == nil ? out : nil
    }
}
