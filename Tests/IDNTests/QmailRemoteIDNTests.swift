// The libidn2 converter qmail-remote uses for U-label recipient domains.
import Core
import IDN
import Testing

@Suite("qmail-remote IDN conversion (libidn2)") struct QmailRemoteIDNTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let input: String
        let ascii: String
        var testDescription: String { input }
    }

    static let cases: [Case] = [
        Case(input: "bücher.example", ascii: "xn--bcher-kva.example"),
        Case(input: "münchen.de", ascii: "xn--mnchen-3ya.de"),
        Case(input: "例え.テスト", ascii: "xn--r8jz45g.xn--zckzah"),
        // Decomposed input (u + combining diaeresis) is normalized to NFC first.
        Case(input: "bu\u{0308}cher.example", ascii: "xn--bcher-kva.example"),
        Case(input: "plain.example", ascii: "plain.example"),
    ]

    @Test(arguments: cases) func convertsToALabels(_ c: Case) {
        #expect(LibIDN2.asciiDomain(Array(c.input.utf8)) == .success(c.ascii))
    }

    @Test func asciiNamesAreNotConverted() {
        #expect(LibIDN2.lookupName("Mixed.Case.Example") == .success("Mixed.Case.Example"))
        #expect(LibIDN2.lookupName("bücher.example") == .success("xn--bcher-kva.example"))
    }

    @Test func invalidNamesFail() {
        // A disallowed code point (a symbol), broken UTF-8 and an embedded NUL have no A-label.
        for bad in [Array("☃.example".utf8), [0x62, 0xC3, 0x28, 0x2E, 0x65], [0x62, 0xC3, 0xBC, 0x00, 0x2E, 0x65]] {
            guard case .failure(.invalid(let why)) = LibIDN2.asciiDomain(bad) else {
                Issue.record("converted \(bad)")
                continue
            }
            #expect(!why.isEmpty)
        }
    }
}
