package backends

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

// categoryFromWire maps the contract's ErrorCategory to Category. It is the only place
// that maps the numbering, and a value added to the contract later and missing here
// becomes CategoryInternal.
var categoryFromWire = map[backendv1.ErrorCategory]Category{
	backendv1.ErrorCategory_ERROR_CATEGORY_UNSPECIFIED:     CategoryInternal,
	backendv1.ErrorCategory_ERROR_CATEGORY_INTERNAL:        CategoryInternal,
	backendv1.ErrorCategory_ERROR_CATEGORY_BAD_REQUEST:     CategoryBadRequest,
	backendv1.ErrorCategory_ERROR_CATEGORY_BAD_TEMPLATE:    CategoryBadTemplate,
	backendv1.ErrorCategory_ERROR_CATEGORY_NOT_AUTHORIZED:  CategoryNotAuthorized,
	backendv1.ErrorCategory_ERROR_CATEGORY_NOT_FOUND:       CategoryNotFound,
	backendv1.ErrorCategory_ERROR_CATEGORY_ALREADY_REVOKED: CategoryAlreadyRevoked,
	backendv1.ErrorCategory_ERROR_CATEGORY_UNSUPPORTED:     CategoryUnsupported,
	backendv1.ErrorCategory_ERROR_CATEGORY_UNAVAILABLE:     CategoryUnavailable,
}

// errorFromStatus converts an error of a BackendService rpc into an *Error.
//
// A status with an ErrorDetail keeps the plugin's category and public detail, and its
// message becomes the internal cause. A status without one did not come from the
// plugin's code: transport failures (the process died, the connection broke, the
// deadline passed) become CategoryUnavailable, UNIMPLEMENTED from a plugin built
// against an older contract becomes CategoryUnsupported, and anything else
// CategoryInternal. When ctx has ended, the cause wraps ctx.Err() so that errors.Is
// finds context.Canceled or context.DeadlineExceeded.
func errorFromStatus(ctx context.Context, backend string, err error) error {
	var backendErr *Error
	if errors.As(err, &backendErr) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Category: CategoryInternal, Err: fmt.Errorf("plugin %q: %w", backend, err)}
	}

	cause := fmt.Errorf("plugin %q returned %s: %s", backend, st.Code(), st.Message())
	if ctxErr := ctx.Err(); ctxErr != nil {
		cause = fmt.Errorf("plugin %q returned %s: %s: %w", backend, st.Code(), st.Message(), ctxErr)
	}
	if detail := errorDetail(st); detail != nil {
		category, known := categoryFromWire[detail.GetCategory()]
		if !known {
			category = CategoryInternal
		}
		return &Error{Category: category, Detail: detail.GetPublicDetail(), Err: cause}
	}

	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return &Error{Category: CategoryUnavailable, Detail: "the CA is temporarily unavailable", Err: cause}
	case codes.Unimplemented:
		return &Error{Category: CategoryUnsupported, Detail: "the CA does not support this operation", Err: cause}
	default:
		return &Error{Category: CategoryInternal, Err: cause}
	}
}

// isTransportFailure reports whether err is a status without ErrorDetail that a call
// gets when the process dies or is killed during the call. That is UNAVAILABLE, or
// CANCELLED while the caller's ctx is still live, because gRPC returns CANCELLED when
// the host closes the connection under a call.
func isTransportFailure(ctx context.Context, err error) bool {
	st, ok := status.FromError(err)
	if !ok || errorDetail(st) != nil {
		return false
	}
	switch st.Code() {
	case codes.Unavailable:
		return true
	case codes.Canceled:
		return ctx.Err() == nil
	default:
		return false
	}
}

func errorDetail(st *status.Status) *backendv1.ErrorDetail {
	for _, d := range st.Details() {
		if detail, ok := d.(*backendv1.ErrorDetail); ok {
			return detail
		}
	}
	return nil
}
