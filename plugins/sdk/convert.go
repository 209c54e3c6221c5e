package sdk

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

// timeFromProto returns the zero time for an unset timestamp and a CategoryBadRequest
// error naming field for one out of the range that RFC 3339 allows.
func timeFromProto(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, &Error{Category: CategoryBadRequest, Detail: field + " is not a valid time", Err: err}
	}
	return ts.AsTime(), nil
}

func durationToProto(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// reasonFromProto maps the contract's RevocationReason to the Go type. The contract
// keeps "no reason given" (0) apart from an explicit RFC 5280 unspecified (256).
func reasonFromProto(r backendv1.RevocationReason) (RevocationReason, error) {
	switch r {
	case backendv1.RevocationReason_REVOCATION_REASON_UNSPECIFIED:
		return ReasonNone, nil
	case backendv1.RevocationReason_REVOCATION_REASON_RFC5280_UNSPECIFIED:
		return ReasonUnspecified, nil
	case backendv1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE,
		backendv1.RevocationReason_REVOCATION_REASON_CA_COMPROMISE,
		backendv1.RevocationReason_REVOCATION_REASON_AFFILIATION_CHANGED,
		backendv1.RevocationReason_REVOCATION_REASON_SUPERSEDED,
		backendv1.RevocationReason_REVOCATION_REASON_CESSATION_OF_OPERATION,
		backendv1.RevocationReason_REVOCATION_REASON_CERTIFICATE_HOLD,
		backendv1.RevocationReason_REVOCATION_REASON_REMOVE_FROM_CRL,
		backendv1.RevocationReason_REVOCATION_REASON_PRIVILEGE_WITHDRAWN,
		backendv1.RevocationReason_REVOCATION_REASON_AA_COMPROMISE:
		// Values 1 to 10 equal the RFC 5280 codes.
		return RevocationReason(r), nil
	default:
		return 0, Errorf(CategoryBadRequest, "unknown revocation reason %d", int32(r))
	}
}

// String returns the RFC 5280 name of the reason, or "none" for ReasonNone.
func (r RevocationReason) String() string {
	if name, ok := reasonNames[r]; ok {
		return name
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

var reasonNames = map[RevocationReason]string{
	ReasonNone:                 "none",
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}
