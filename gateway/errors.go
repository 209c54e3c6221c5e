package gateway

import (
	"errors"
	"fmt"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
)

// Failure is the rejection of a request: the PKIFailureInfo bit to send, a detail the
// client may read, and the internal cause, which is only logged.
type Failure struct {
	Info   cmp.FailureInfo
	Detail string
	Err    error
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return fmt.Sprintf("%s: %s: %v", f.Info, f.Detail, f.Err)
	}
	return fmt.Sprintf("%s: %s", f.Info, f.Detail)
}

func (f *Failure) Unwrap() error { return f.Err }

func reject(info cmp.FailureInfo, format string, args ...any) *Failure {
	return &Failure{Info: info, Detail: fmt.Sprintf(format, args...)}
}

// backendFailures maps each backend error category to the failInfo sent to the client
// and whether the backend's detail may be shown. Internal detail is never shown.
var backendFailures = map[backends.Category]struct {
	info       cmp.FailureInfo
	showDetail bool
}{
	backends.CategoryInternal:       {cmp.FailSystemFailure, false},
	backends.CategoryBadRequest:     {cmp.FailBadRequest, true},
	backends.CategoryBadTemplate:    {cmp.FailBadCertTemplate, true},
	backends.CategoryNotAuthorized:  {cmp.FailNotAuthorized, true},
	backends.CategoryNotFound:       {cmp.FailBadCertID, true},
	backends.CategoryAlreadyRevoked: {cmp.FailCertRevoked, true},
	backends.CategoryUnsupported:    {cmp.FailBadRequest, true},
	backends.CategoryUnavailable:    {cmp.FailSystemUnavail, false},
}

// failureOf maps any error of the request path to the failure sent to the client. It is
// the only place where internal errors become PKIFailureInfo bits; the default is
// systemFailure with a generic detail, so an unexpected error leaks nothing.
func failureOf(err error) *Failure {
	var failure *Failure
	if errors.As(err, &failure) {
		return failure
	}
	var backendErr *backends.Error
	if errors.As(err, &backendErr) {
		row, ok := backendFailures[backendErr.Category]
		if !ok {
			row = backendFailures[backends.CategoryInternal]
		}
		detail := "the CA failed to process the request"
		if row.showDetail && backendErr.Detail != "" {
			detail = backendErr.Detail
		} else if backendErr.Category == backends.CategoryUnavailable {
			detail = "the CA is unavailable; retry later"
		}
		return &Failure{Info: row.info, Detail: detail, Err: err}
	}
	switch {
	case errors.Is(err, cmp.ErrMalformed):
		return &Failure{Info: cmp.FailBadDataFormat, Detail: "the message is not a valid DER PKIMessage", Err: err}
	case errors.Is(err, cmp.ErrBadAlgorithm):
		return &Failure{Info: cmp.FailBadAlg, Detail: "unsupported protection algorithm or parameters", Err: err}
	case errors.Is(err, cmp.ErrBadProtection):
		return &Failure{Info: cmp.FailBadMessageCheck, Detail: "the message protection does not verify", Err: err}
	case errors.Is(err, store.ErrTransactionExists):
		return &Failure{Info: cmp.FailTransactionIDInUse, Detail: "the transactionID is already in use", Err: err}
	case errors.Is(err, store.ErrNonceReplayed):
		return &Failure{Info: cmp.FailBadSenderNonce, Detail: "the senderNonce was already used", Err: err}
	}
	return &Failure{Info: cmp.FailSystemFailure, Detail: "internal error", Err: err}
}
