package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

// Category classifies a CA failure. The values and their order are those of certgate's
// backends.Category, and each crosses the plugin boundary as the ErrorCategory of the
// contract.
type Category int

// The categories.
const (
	CategoryInternal       Category = iota // a fault in the CA; certgate shows no detail to the client
	CategoryBadRequest                     // the request is malformed or contradicts the CA's state
	CategoryBadTemplate                    // the template requests something the CA will not sign
	CategoryNotAuthorized                  // the requester may not do this
	CategoryNotFound                       // the certificate, issuer or poll reference is unknown
	CategoryAlreadyRevoked                 // the certificate is already revoked
	CategoryUnsupported                    // the CA does not implement the operation
	CategoryUnavailable                    // the CA is temporarily unreachable; retry later
)

// categoryDetails is the one table from which every category conversion reads.
var categoryDetails = map[Category]struct {
	name  string
	wire  backendv1.ErrorCategory
	gcode codes.Code
}{
	CategoryInternal:       {"internal", backendv1.ErrorCategory_ERROR_CATEGORY_INTERNAL, codes.Internal},
	CategoryBadRequest:     {"bad request", backendv1.ErrorCategory_ERROR_CATEGORY_BAD_REQUEST, codes.InvalidArgument},
	CategoryBadTemplate:    {"bad template", backendv1.ErrorCategory_ERROR_CATEGORY_BAD_TEMPLATE, codes.InvalidArgument},
	CategoryNotAuthorized:  {"not authorized", backendv1.ErrorCategory_ERROR_CATEGORY_NOT_AUTHORIZED, codes.PermissionDenied},
	CategoryNotFound:       {"not found", backendv1.ErrorCategory_ERROR_CATEGORY_NOT_FOUND, codes.NotFound},
	CategoryAlreadyRevoked: {"already revoked", backendv1.ErrorCategory_ERROR_CATEGORY_ALREADY_REVOKED, codes.FailedPrecondition},
	CategoryUnsupported:    {"unsupported", backendv1.ErrorCategory_ERROR_CATEGORY_UNSUPPORTED, codes.Unimplemented},
	CategoryUnavailable:    {"unavailable", backendv1.ErrorCategory_ERROR_CATEGORY_UNAVAILABLE, codes.Unavailable},
}

func (c Category) String() string {
	if d, ok := categoryDetails[c]; ok {
		return d.name
	}
	return fmt.Sprintf("category(%d)", int(c))
}

// Error is a CA failure with a category. Detail may be shown to the client, so it must
// not contain secrets; Err is the internal cause, which certgate only logs.
type Error struct {
	Category Category
	Detail   string
	Err      error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Category, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Category, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of category c whose public detail is the formatted text. Put
// internal causes in Error.Err instead of the text.
func Errorf(c Category, format string, args ...any) *Error {
	return &Error{Category: c, Detail: fmt.Sprintf(format, args...)}
}

// statusError converts an error returned by the CA into a gRPC status error carrying an
// ErrorDetail. The status message is the complete error text, for certgate's log.
func statusError(err error) error {
	var caErr *Error
	switch {
	case errors.As(err, &caErr):
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The host's deadline passed or it gave up; a later attempt may succeed.
		caErr = &Error{Category: CategoryUnavailable, Detail: "the CA did not respond in time", Err: err}
	default:
		caErr = &Error{Category: CategoryInternal, Err: err}
	}

	details, ok := categoryDetails[caErr.Category]
	if !ok {
		details = categoryDetails[CategoryInternal]
	}
	st := status.New(details.gcode, err.Error())
	withDetail, detailErr := st.WithDetails(&backendv1.ErrorDetail{
		Category:     details.wire,
		PublicDetail: caErr.Detail,
	})
	if detailErr != nil {
		// Only a marshalling failure of a two-field message gets here. The host then
		// receives an error without category, which it treats as internal.
		return st.Err()
	}
	return withDetail.Err()
}
