// Protocol and service names for `proto` and `port`, in place of /etc/protocols and
// /etc/services so a configuration means the same on every host. The first name of
// each row is the one the printer uses (OpenBSD's primary name); the rest are aliases.

enum ProtocolNames {
    static let table: [(number: UInt8, names: [String])] = [
        (0, ["ip", "hopopt"]),
        (1, ["icmp"]),
        (2, ["igmp"]),
        (4, ["ipencap", "ipv4"]),
        (6, ["tcp"]),
        (17, ["udp"]),
        (41, ["ipv6"]),
        (43, ["ipv6-route"]),
        (44, ["ipv6-frag"]),
        (46, ["rsvp"]),
        (47, ["gre"]),
        (50, ["esp"]),
        (51, ["ah"]),
        (58, ["ipv6-icmp", "icmp6", "ipv6-icmp6"]),
        (59, ["ipv6-nonxt"]),
        (60, ["ipv6-opts"]),
        (89, ["ospf"]),
        (103, ["pim"]),
        (108, ["ipcomp"]),
        (112, ["carp", "vrrp"]),
        (132, ["sctp"]),
        (136, ["udplite"]),
    ]

    static func number(_ name: String) -> UInt8? {
        table.first { $0.names.contains(name) }?.number
    }

    /// The name ipsecctl prints, or the number.
    static func name(_ number: UInt8) -> String {
        table.first { $0.number == number }?.names[0] ?? String(number)
    }
}

enum ServiceNames {
    static let table: [(port: UInt16, names: [String])] = [
        (20, ["ftp-data"]),
        (21, ["ftp"]),
        (22, ["ssh"]),
        (23, ["telnet"]),
        (25, ["smtp"]),
        (53, ["domain"]),
        (67, ["bootps"]),
        (68, ["bootpc"]),
        (69, ["tftp"]),
        (80, ["www", "http"]),
        (88, ["kerberos"]),
        (110, ["pop3"]),
        (111, ["sunrpc"]),
        (123, ["ntp"]),
        (143, ["imap"]),
        (161, ["snmp"]),
        (179, ["bgp"]),
        (389, ["ldap"]),
        (443, ["https"]),
        (500, ["isakmp"]),
        (514, ["syslog"]),
        (587, ["submission"]),
        (636, ["ldaps"]),
        (853, ["domain-s"]),
        (993, ["imaps"]),
        (995, ["pop3s"]),
        (1194, ["openvpn"]),
        (1812, ["radius"]),
        (2049, ["nfsd", "nfs"]),
        (3306, ["mysql"]),
        (4500, ["ipsec-nat-t"]),
        (5060, ["sip"]),
        (5432, ["postgresql"]),
    ]

    static func port(_ name: String) -> UInt16? {
        table.first { $0.names.contains(name) }?.port
    }

    static func name(_ port: UInt16) -> String {
        table.first { $0.port == port }?.names[0] ?? String(port)
    }
}

/// A plain decimal number: ASCII digits only (no sign, no blanks); nil on overflow.
func decimal(_ text: String) -> Int? {
    guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return Int(text)
}
