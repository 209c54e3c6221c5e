package backends

import (
	"errors"
	"fmt"
	"strings"
)

// Category classifies a backend failure. It crosses the plugin boundary as the
// ErrorCategory of proto/certgate/backend/v1, and each frontend maps it to its protocol's
// failure code in one place.
type Category int

// The categories. CategoryInternal is the default for errors that carry no category.
const (
	CategoryInternal       Category = iota // a fault in the CA; the public detail is dropped
	CategoryBadRequest                     // the request is malformed
	CategoryBadTemplate                    // the template asks for something the CA will not sign
	CategoryNotAuthorized                  // the requester may not do this
	CategoryNotFound                       // the certificate or poll reference is unknown
	CategoryAlreadyRevoked                 // the certificate is already revoked
	CategoryUnsupported                    // the backend does not implement the operation
	CategoryUnavailable                    // the CA is temporarily unreachable; retry later
)

var categoryNames = map[Category]string{
	CategoryInternal:       "internal",
	CategoryBadRequest:     "bad request",
	CategoryBadTemplate:    "bad template",
	CategoryNotAuthorized:  "not authorized",
	CategoryNotFound:       "not found",
	CategoryAlreadyRevoked: "already revoked",
	CategoryUnsupported:    "unsupported",
	CategoryUnavailable:    "unavailable",
}

func (c Category) String() string {
	if name, ok := categoryNames[c]; ok {
		return name
	}
	return fmt.Sprintf("category(%d)", int(c))
}

// Error is a backend failure with a category. Detail may be shown to the client; Err is
// the internal cause and is only logged.
type Error struct {
	Category Category
	Detail   string
	Err      error
}

func (e *Error) Error() string {
	// A cause that already carries the detail, as errors decoded from a plugin do, is
	// printed alone so that the text does not appear twice.
	if e.Err != nil && strings.Contains(e.Err.Error(), e.Detail) {
		return fmt.Sprintf("backends: %s: %v", e.Category, e.Err)
	}
	if e.Err != nil {
		return fmt.Sprintf("backends: %s: %s: %v", e.Category, e.Detail, e.Err)
	}
	return fmt.Sprintf("backends: %s: %s", e.Category, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of category c whose public detail is the formatted text.
func Errorf(c Category, format string, args ...any) *Error {
	return &Error{Category: c, Detail: fmt.Sprintf(format, args...)}
}

// CategoryOf returns the category of err, or CategoryInternal when err carries none.
func CategoryOf(err error) Category {
	var backendErr *Error
	if errors.As(err, &backendErr) {
		return backendErr.Category
	}
	return CategoryInternal
}
