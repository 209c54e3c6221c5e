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
	"sync"
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

// workloads lists the implemented workloads by the name that -workload takes. All of
// them register their flags on the one flag set of the load subcommand, so their flag
// names must differ.
var workloads = map[string]workloadFactory{
	"cmp-http-ir": {
		description: "CMP ir over HTTP with keep-alive, PasswordBasedMac, a P-256 key, implicitConfirm",
		register:    registerCMPHTTPIR,
	},
	"cmp-tcp-ir": {
		description: "the requests of cmp-http-ir over CMP's TCP transfer, one connection per client",
		register:    registerCMPTCPIR,
	},
	"scep-pkcsreq": {
		description: "SCEP PKCSReq over HTTP POST with keep-alive, RSA 2048 client keys, AES-128-CBC, SHA-256, challenge password",
		register:    registerSCEPPKCSReq,
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

// readSecret reads a shared secret, such as a MAC secret or a challenge password, from
// a file, without one trailing newline, the way openssl's "-secret file:" reads it.
// Errors name the flag and the secret by flagName and secretName.
func readSecret(path, flagName, secretName string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s is required", flagName)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", secretName, err)
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if text == "" {
		return nil, fmt.Errorf("the file %s of %s is empty", path, secretName)
	}
	return []byte(text), nil
}

// forEachParallel calls fn for 0 to n-1 on all cores and returns the errors joined.
func forEachParallel(n int, fn func(i int) error) error {
	workers := min(max(n, 1), defaultWorkers())
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for worker := range workers {
		wg.Go(func() {
			for i := worker; i < n; i += workers {
				if err := fn(i); err != nil {
					errs[worker] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
