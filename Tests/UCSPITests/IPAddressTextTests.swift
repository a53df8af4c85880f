// IPv4/IPv6 text forms and the CIDR bit strings of spec §0 and §4.2.
import Testing
import UCSPI

@Suite struct IPAddressTextTests {
    @Test func ipv4() {
        #expect(IPAddressText.parseIPv4(bytes("1.2.3.4")) == [1, 2, 3, 4])
        #expect(IPAddressText.parseIPv4(bytes("255.0.010.0")) == [255, 0, 10, 0])
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "1.2.3.4.", "a.b.c.d", "1.2.3.1234", " 1.2.3.4"] {
            #expect(IPAddressText.parseIPv4(bytes(bad)) == nil, "\(bad)")
        }
        #expect(IPAddressText.parseIPv4Octets(bytes("10")) == [10])
        #expect(IPAddressText.parseIPv4Octets(bytes("172.16")) == [172, 16])
        #expect(IPAddressText.formatIPv4([10, 0, 0, 255]) == bytes("10.0.0.255"))
    }

    @Test(arguments: [
        ("::", "::", "0000:0000:0000:0000:0000:0000:0000:0000"),
        ("::1", "::1", "0000:0000:0000:0000:0000:0000:0000:0001"),
        ("1::", "1::", "0001:0000:0000:0000:0000:0000:0000:0000"),
        ("2001:DB8::1", "2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001"),
        ("fe80::a:b:cd:1234", "fe80::a:b:cd:1234", "fe80:0000:0000:0000:000a:000b:00cd:1234"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "0001:0002:0003:0004:0005:0006:0007:0008"),
        // The first run of zero groups is compressed, not the longest (ip6_fmt).
        ("2001:0:0:1:0:0:0:1", "2001::1:0:0:0:1", "2001:0000:0000:0001:0000:0000:0000:0001"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7", "0001:0000:0002:0003:0004:0005:0006:0007"),
        ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0", "0001:0002:0003:0004:0005:0006:0007:0000"),
        ("1:2:3:4:5:6::", "1:2:3:4:5:6::", "0001:0002:0003:0004:0005:0006:0000:0000"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4", "0000:0000:0000:0000:0000:ffff:0102:0304"),
        ("::FFFF:0102:0304", "::ffff:1.2.3.4", "0000:0000:0000:0000:0000:ffff:0102:0304"),
        ("64:ff9b::192.0.2.1", "64:ff9b::c000:201", "0064:ff9b:0000:0000:0000:0000:c000:0201"),
    ])
    func ipv6(_ input: String, _ compact: String, _ expanded: String) throws {
        let parsed = try #require(IPAddressText.parseIPv6(bytes(input)))
        #expect(text(IPAddressText.formatIPv6Compact(parsed)) == compact)
        #expect(text(IPAddressText.formatIPv6Expanded(parsed)) == expanded)
        #expect(IPAddressText.parseIPv6(bytes(expanded)) == parsed)
        #expect(IPAddressText.parseIPv6(bytes(compact)) == parsed)
    }

    @Test func ipv6Rejects() {
        for bad in ["", ":", ":::", "1:::2", "1::2::3", "1.2.3.4", "12345::", "g::", "1:2:3:4:5:6:7:8:9",
                    "1:2:3:4:5:6:7", ":1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:", "1::2:3:4:5:6:7:8",
                    "::1.2.3.4:5", "1.2.3.4::", "::1%eth0", "::256.1.1.1", "2001:db8::/32"] {
            #expect(IPAddressText.parseIPv6(bytes(bad)) == nil, "\(bad)")
        }
    }

    @Test func ipv4BitsFollowSpecExamples() {
        #expect(text(Array(IPAddressText.ipv4Bits([127, 0, 0, 0]).prefix(8))) == "0bcdefgh")
        #expect(text(Array(IPAddressText.ipv4Bits([10, 0, 0, 0]).prefix(8))) == "0000e0g0")
        #expect(text(IPAddressText.ipv4Bits([255, 255, 255, 255])) == "abcdefghijklmnopqrstuvwxyz123456")
        #expect(text(IPAddressText.ipv4Bits([0, 0, 0, 1])) == String(repeating: "0", count: 31) + "6")
    }

    @Test func ipv6BitsFollowSpecExample() throws {
        let a = try #require(IPAddressText.parseIPv6(bytes("2001:db8::")))
        let bits = IPAddressText.ipv6Bits(a)
        #expect(text(Array(bits.prefix(32))) == "00`00000" + "0000000a" + "0000bc0d" + "e0fgh000")
        #expect(bits.count == 128)
        let all = IPAddressText.ipv6Bits([UInt8](repeating: 255, count: 16))
        #expect(all == (0..<128).map { UInt8(0x60 + $0) })
    }
}
