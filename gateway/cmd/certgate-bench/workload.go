package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"
)

// Workload is one kind of enrollment the generator drives: a protocol message and the
// transfer that carries it. Requests are built by Prepare before the timed phase, so
// that the timed phase only sends bytes and classifies the responses.
type Workload interface {
	// Prepare returns n requests. Each is valid for one send, because the server
	// rejects a repeated transactionID or nonce.
	Prepare(n int) ([][]byte, error)

	// NewSender returns the sender of one client. Each client sends one request at a
	// time and keeps its connection open between requests.
	NewSender() (Sender, error)

	// Check verifies one exchange in full (protection, nonces, the issued certificate).
	// It runs once before the timed phase and may cost far more than Classify.
	Check(request, response []byte) error

	// Classify returns "" when response is a successful enrollment and the error kind
	// otherwise, for example "cmp badMessageCheck".
	Classify(response []byte) string

	// Describe returns a one-line description for the report.
	Describe() string
}

// Sender sends requests over one client connection.
type Sender interface {
	// Send delivers one request and returns the response message. A failure below the
	// enrollment protocol is an *exchangeError that names its kind.
	Send(ctx context.Context, request []byte) ([]byte, error)
	Close() error
}

// exchangeError is a failed exchange, with the kind under which the report counts it.
type exchangeError struct {
	kind string // "http 503", "transport timeout", ...
	err  error
}

func (e *exchangeError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *exchangeError) Unwrap() error { return e.err }

// transportKind names a connection-level failure for the error counts.
func transportKind(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "transport timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "transport connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport connection closed"
	}
	return "transport other"
}

// workloadFactory builds a workload from its command-line flags.
type workloadFactory struct {
	description string
	// register adds the workload's own flags to fs and returns the constructor that
	// reads them after parsing.
	register func(fs *flag.FlagSet) func() (Workload, error)
}

// workloads lists the implemented workloads by the name that -workload takes.
//
// TODO: CMP over TCP (port 829) and SCEP PKCSReq are not implemented. Each needs a
// Workload whose Prepare builds its messages and whose Sender speaks its transfer: the
// TCP framing of gateway/cmp for the first, HTTP POST with operation=PKIOperation for
// the second.
var workloads = map[string]workloadFactory{
	"cmp-http-ir": {
		description: "CMP ir over HTTP with keep-alive, PasswordBasedMac, a P-256 key, implicitConfirm",
		register:    registerCMPHTTPIR,
	},
}

func workloadNames() string {
	names := make([]string, 0, len(workloads))
	for name := range workloads {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// readSecret reads a shared secret from a file, without one trailing newline, the way
// openssl's "-secret file:" reads it.
func readSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("-secret-file is required")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the MAC secret: %w", err)
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if text == "" {
		return nil, fmt.Errorf("the MAC secret file %s is empty", path)
	}
	return []byte(text), nil
}
