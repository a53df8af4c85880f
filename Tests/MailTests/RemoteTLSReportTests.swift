// qmail-remote's wording when a tlshosts/ certificate does not verify.
import Core
@testable import Mail
import Testing

@Suite struct RemoteTLSReportTests {
    @Test func verifyFailureReasonIsTakenFromTheHandshakeError() {
        let e = TLSError("TLS connect: error:0A000086:SSL routines::certificate verify failed (unable to get local issuer certificate)")
        #expect(RemoteDelivery.verifyFailure(e) == "unable to get local issuer certificate")
        #expect(RemoteDelivery.verifyFailure(TLSError("TLS connect: error:0A000086:SSL routines::certificate verify failed (IP address mismatch)"))
                == "IP address mismatch")
    }

    @Test func otherHandshakeFailuresAreNotVerifyFailures() {
        #expect(RemoteDelivery.verifyFailure(TLSError("TLS connect: connection closed by peer")) == nil)
        #expect(RemoteDelivery.verifyFailure(TLSError("TLS connect: certificate verify failed ()")) == nil)
        #expect(RemoteDelivery.verifyFailure(TLSError("certificate verify failed (")) == nil)
        #expect(RemoteDelivery.verifyFailure(TLSError(")")) == nil)
        #expect(RemoteDelivery.verifyFailure(TLSError("")) == nil)
    }
}
