package scep

import (
	"errors"
	"fmt"

	"github.com/certgate/certgate/gateway/cmp"
)

// failure is the reason for a CertRep FAILURE. It carries a
// CMP PKIFailureInfo, whether the router produced it or the frontend did, so that
// failInfoOf is the one place where failures become SCEP failInfo values.
type failure struct {
	info   cmp.FailureInfo
	detail string // for the client's failInfoText and the log
	err    error  // internal cause, for the log only
}

func (f *failure) Error() string {
	if f.err != nil {
		return fmt.Sprintf("%s: %s: %v", f.info, f.detail, f.err)
	}
	return fmt.Sprintf("%s: %s", f.info, f.detail)
}

func (f *failure) Unwrap() error { return f.err }

func reject(info cmp.FailureInfo, format string, args ...any) *failure {
	return &failure{info: info, detail: fmt.Sprintf(format, args...)}
}

// failInfoTable maps every PKIFailureInfo bit of RFC 9810 section 5.2.3 to the closest
// of the five SCEP failInfo values (RFC 8894 section 3.2.1.4). badAlg, badMessageCheck,
// badRequest, badTime and badCertId keep their meaning; the other bits fall into one of
// them by what the client has to fix.
var failInfoTable = []struct {
	cmp  cmp.FailureInfo
	scep FailInfo
}{
	{cmp.FailBadAlg, FailBadAlg},
	{cmp.FailBadMessageCheck, FailBadMessageCheck},
	{cmp.FailBadRequest, FailBadRequest},
	{cmp.FailBadTime, FailBadTime},
	{cmp.FailBadCertID, FailBadCertID},
	{cmp.FailBadDataFormat, FailBadRequest},
	{cmp.FailWrongAuthority, FailBadRequest},
	{cmp.FailIncorrectData, FailBadRequest},
	{cmp.FailMissingTimeStamp, FailBadTime},
	{cmp.FailBadPOP, FailBadMessageCheck}, // the PKCS #10 signature does not verify
	{cmp.FailCertRevoked, FailBadCertID},  // a RenewalReq signed with a revoked certificate
	{cmp.FailCertConfirmed, FailBadRequest},
	{cmp.FailWrongIntegrity, FailBadMessageCheck},
	{cmp.FailBadRecipientNonce, FailBadRequest},
	{cmp.FailTimeNotAvailable, FailBadTime},
	{cmp.FailUnacceptedPolicy, FailBadRequest},
	{cmp.FailUnacceptedExtension, FailBadRequest},
	{cmp.FailAddInfoNotAvailable, FailBadRequest},
	{cmp.FailBadSenderNonce, FailBadRequest},
	{cmp.FailBadCertTemplate, FailBadRequest},
	{cmp.FailSignerNotTrusted, FailBadMessageCheck},
	{cmp.FailTransactionIDInUse, FailBadRequest},
	{cmp.FailUnsupportedVersion, FailBadRequest},
	{cmp.FailNotAuthorized, FailBadRequest}, // a wrong challenge password
	{cmp.FailSystemUnavail, FailBadRequest},
	{cmp.FailSystemFailure, FailBadRequest},
	{cmp.FailDuplicateCertReq, FailBadRequest},
}

// failInfoOf maps a PKIFailureInfo to the SCEP failInfo sent to the client. When
// several bits are set, the lowest bit with a row decides; no bit at all, or only
// unknown bits, gives badRequest.
func failInfoOf(info cmp.FailureInfo) FailInfo {
	for _, row := range failInfoTable {
		if info&row.cmp != 0 {
			return row.scep
		}
	}
	return FailBadRequest
}

// failureOf turns an error of the SCEP request path into the failure to send. Errors
// the frontend does not know become systemFailure with a generic detail, so nothing
// internal reaches the client.
func failureOf(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	var algorithm *AlgorithmError
	switch {
	case errors.As(err, &algorithm):
		return &failure{info: cmp.FailBadAlg, detail: algorithm.Error(), err: err}
	case errors.Is(err, ErrBadSignature):
		return &failure{info: cmp.FailBadMessageCheck, detail: "the pkiMessage signature does not verify", err: err}
	case errors.Is(err, ErrDecrypt):
		return &failure{info: cmp.FailBadMessageCheck, detail: "the pkcsPKIEnvelope does not decrypt", err: err}
	case errors.Is(err, ErrNoRecipient):
		return &failure{info: cmp.FailBadRequest, detail: "encrypt the pkcsPKIEnvelope to the RA certificate of GetCACert", err: err}
	case errors.Is(err, ErrMalformed):
		return &failure{info: cmp.FailBadDataFormat, detail: "the message is not a valid pkiMessage", err: err}
	}
	return &failure{info: cmp.FailSystemFailure, detail: "internal error", err: err}
}
