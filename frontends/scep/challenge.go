package scep

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
)

// ErrChallengeInvalid is the error of a ChallengeValidator for a wrong or missing
// challenge password. Any error rejects the request with failInfo badRequest.
var ErrChallengeInvalid = errors.New("scep: the challenge password is wrong or missing")

// ChallengeRequest is the request a ChallengeValidator decides on.
type ChallengeRequest struct {
	Profile       string // the SCEP profile's name
	TransactionID string
	// Challenge is the challengePassword of the CSR, "" when absent. It is a secret:
	// never log it.
	Challenge string
	CSR       *x509.CertificateRequest
}

// ChallengeValidator decides whether the challenge password of a PKCSReq authorizes
// the enrollment, before the request reaches the router. A RenewalReq is authorized by
// the certificate it is signed with and is not passed to the validator.
type ChallengeValidator interface {
	ValidateChallenge(ctx context.Context, req *ChallengeRequest) error
}

// ChallengeFinisher is implemented by a validator whose accepted challenges are used up,
// such as one-time challenges. After a PKCSReq that the validator accepted, the handler
// calls FinishChallenge with used set when the CA issued the certificate or left the
// request pending. When used is false, the enrollment failed before any certificate
// existed, and the validator may make the challenge usable again.
type ChallengeFinisher interface {
	FinishChallenge(ctx context.Context, req *ChallengeRequest, used bool)
}

// ChallengeValidatorFunc adapts a function to ChallengeValidator.
type ChallengeValidatorFunc func(ctx context.Context, req *ChallengeRequest) error

// ValidateChallenge calls f.
func (f ChallengeValidatorFunc) ValidateChallenge(ctx context.Context, req *ChallengeRequest) error {
	return f(ctx, req)
}

// StaticChallenge returns a validator that accepts one fixed challenge password. The
// comparison takes the same time for every wrong password, whatever its length, because
// it compares SHA-256 digests in constant time.
// A static challenge can be used again by anyone who learns it; certgate also accepts
// one-time challenges, which its command line issues.
func StaticChallenge(secret []byte) ChallengeValidator {
	want := sha256.Sum256(secret)
	return ChallengeValidatorFunc(func(_ context.Context, req *ChallengeRequest) error {
		got := sha256.Sum256([]byte(req.Challenge))
		if req.Challenge == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return ErrChallengeInvalid
		}
		return nil
	})
}
