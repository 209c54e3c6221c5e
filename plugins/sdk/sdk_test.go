package sdk

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backendv1 "github.com/certgate/certgate/proto/certgate/backend/v1"
)

func TestParseOID(t *testing.T) {
	valid := map[string]string{
		"2.5.29.17":            "2.5.29.17",
		"1.3.6.1.4.1.311.20.2": "1.3.6.1.4.1.311.20.2",
		"0.39":                 "0.39",
		"2.999.1":              "2.999.1",
	}
	for in, want := range valid {
		oid, err := parseOID(in)
		if err != nil {
			t.Errorf("parseOID(%q): %v", in, err)
			continue
		}
		if oid.String() != want {
			t.Errorf("parseOID(%q) = %s", in, oid)
		}
	}

	for _, in := range []string{"", "2", "2..5", "2.5.", ".2.5", "2.05", "2.-5", "2.+5", "3.1", "1.40", "2.5.x", "2.5.4294967296", " 2.5"} {
		if _, err := parseOID(in); err == nil {
			t.Errorf("parseOID(%q) succeeded, want an error", in)
		}
	}
}

func TestReasonFromProtoEveryValue(t *testing.T) {
	for value, name := range backendv1.RevocationReason_name {
		reason, err := reasonFromProto(backendv1.RevocationReason(value))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		switch backendv1.RevocationReason(value) {
		case backendv1.RevocationReason_REVOCATION_REASON_UNSPECIFIED:
			if reason != ReasonNone {
				t.Errorf("%s maps to %s, want none", name, reason)
			}
		case backendv1.RevocationReason_REVOCATION_REASON_RFC5280_UNSPECIFIED:
			if reason != ReasonUnspecified {
				t.Errorf("%s maps to %s, want unspecified", name, reason)
			}
		default:
			if int32(reason) != value {
				t.Errorf("%s maps to %d, want the RFC 5280 code %d", name, reason, value)
			}
		}
		if _, ok := reasonNames[reason]; !ok {
			t.Errorf("%s maps to %d, which has no name", name, reason)
		}
	}

	for _, value := range []int32{7, 11, 255, -1} {
		_, err := reasonFromProto(backendv1.RevocationReason(value))
		var sdkErr *Error
		if !errors.As(err, &sdkErr) || sdkErr.Category != CategoryBadRequest {
			t.Errorf("reason %d: error = %v, want a bad request", value, err)
		}
	}
}

func TestCategoryTableComplete(t *testing.T) {
	wire := make(map[backendv1.ErrorCategory]bool)
	for c := CategoryInternal; c <= CategoryUnavailable; c++ {
		d, ok := categoryDetails[c]
		if !ok {
			t.Errorf("category %d has no row", c)
			continue
		}
		wire[d.wire] = true
	}
	for value, name := range backendv1.ErrorCategory_name {
		if value != 0 && !wire[backendv1.ErrorCategory(value)] {
			t.Errorf("%s is produced by no category", name)
		}
	}
	if got := Category(42).String(); got != "category(42)" {
		t.Errorf("unknown category prints %q", got)
	}
}

func TestStatusErrorCarriesCategory(t *testing.T) {
	tests := []struct {
		err        error
		wantCode   codes.Code
		wantWire   backendv1.ErrorCategory
		wantDetail string
	}{
		{Errorf(CategoryBadTemplate, "no SAN"), codes.InvalidArgument, backendv1.ErrorCategory_ERROR_CATEGORY_BAD_TEMPLATE, "no SAN"},
		{fmt.Errorf("wrapped: %w", Errorf(CategoryNotFound, "serial 1f")), codes.NotFound, backendv1.ErrorCategory_ERROR_CATEGORY_NOT_FOUND, "serial 1f"},
		{errors.New("disk full"), codes.Internal, backendv1.ErrorCategory_ERROR_CATEGORY_INTERNAL, ""},
		{context.DeadlineExceeded, codes.Unavailable, backendv1.ErrorCategory_ERROR_CATEGORY_UNAVAILABLE, "the CA did not respond in time"},
		{&Error{Category: Category(99), Detail: "x"}, codes.Internal, backendv1.ErrorCategory_ERROR_CATEGORY_INTERNAL, "x"},
	}
	for _, tt := range tests {
		st, ok := status.FromError(statusError(tt.err))
		if !ok {
			t.Fatalf("%v: not a status error", tt.err)
		}
		if st.Code() != tt.wantCode {
			t.Errorf("%v: code = %s, want %s", tt.err, st.Code(), tt.wantCode)
		}
		if st.Message() != tt.err.Error() {
			t.Errorf("%v: message = %q, want the error text", tt.err, st.Message())
		}
		details := st.Details()
		if len(details) != 1 {
			t.Fatalf("%v: %d details, want 1", tt.err, len(details))
		}
		detail, ok := details[0].(*backendv1.ErrorDetail)
		if !ok {
			t.Fatalf("%v: detail is %T", tt.err, details[0])
		}
		if detail.GetCategory() != tt.wantWire || detail.GetPublicDetail() != tt.wantDetail {
			t.Errorf("%v: detail = %v %q, want %v %q", tt.err, detail.GetCategory(), detail.GetPublicDetail(), tt.wantWire, tt.wantDetail)
		}
	}
}

func TestHCLogHandlerWritesHCLogJSON(t *testing.T) {
	var out bytes.Buffer
	hc := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &out, JSONFormat: true})
	logger := slog.New(&hclogHandler{logger: hc}).With("ca", "test").WithGroup("req")

	logger.Debug("dropped")
	logger.Warn("issued", "serial", "1f", slog.Group("subject", "cn", "device"))

	var record map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &record); err != nil {
		t.Fatalf("output %q is not one JSON line: %v", out.String(), err)
	}
	want := map[string]any{"@level": "warn", "@message": "issued", "ca": "test", "req.serial": "1f", "req.subject.cn": "device"}
	for key, value := range want {
		if record[key] != value {
			t.Errorf("%s = %v, want %v (record %v)", key, record[key], value, record)
		}
	}
}

// Stubs for the capability test: each provides one part of a CA.
type (
	stubCore    struct{}
	stubRevoker struct{}
	stubPoller  struct{}
	stubCRL     struct{}
)

func (stubCore) Configure(context.Context, string, map[string]any) error    { return nil }
func (stubCore) Issue(context.Context, *IssueRequest) (*IssueResult, error) { return nil, nil }
func (stubCore) CAChain(context.Context) ([]*x509.Certificate, error)       { return nil, nil }
func (stubRevoker) Revoke(context.Context, *RevokeRequest) error            { return nil }
func (stubPoller) Poll(context.Context, *PollRequest) (*IssueResult, error) { return nil, nil }
func (stubCRL) CRL(context.Context) ([]byte, error)                         { return nil, nil }

func TestCapabilitiesFromInterfaces(t *testing.T) {
	tests := []struct {
		name string
		ca   CA
		want []backendv1.Capability
	}{
		{"core only", struct {
			stubCore
			stubRevoker
		}{}, []backendv1.Capability{backendv1.Capability_CAPABILITY_REVOKE}},
		{"revoke unsupported", struct {
			stubCore
			RevokeUnsupported
		}{}, nil},
		{"every optional interface", struct {
			stubCore
			stubRevoker
			stubPoller
			stubCRL
		}{}, []backendv1.Capability{
			backendv1.Capability_CAPABILITY_REVOKE,
			backendv1.Capability_CAPABILITY_CRL,
			backendv1.Capability_CAPABILITY_PENDING,
		}},
	}
	for _, tt := range tests {
		got := capabilities(tt.ca)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: capabilities = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// deferringCA leaves every revocation pending until it was polled once.
type deferringCA struct {
	stubCore
	stubRevoker
	polled map[string]bool
}

func (c *deferringCA) DeferRevoke(_ context.Context, req *RevokeRequest) (*Pending, error) {
	return &Pending{PollReference: fmt.Sprintf("r-%x", req.TransactionID), CheckAfter: 2 * time.Second}, nil
}

func (c *deferringCA) PollRevoke(_ context.Context, req *PollRequest) (*Pending, error) {
	if c.polled[req.PollReference] {
		return nil, nil
	}
	c.polled[req.PollReference] = true
	return &Pending{PollReference: req.PollReference}, nil
}

func TestDeferredRevocationOverContract(t *testing.T) {
	ctx := context.Background()
	s := &server{ca: &deferringCA{polled: map[string]bool{}}}
	s.configured.Store(true)
	resp, err := s.Revoke(ctx, &backendv1.RevokeRequest{TransactionId: []byte{1, 2}, SerialNumber: []byte{7},
		Reason: backendv1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetPending().GetPollReference() != "r-0102" || resp.GetPending().GetCheckAfter().AsDuration() != 2*time.Second {
		t.Fatalf("Revoke pending = %v, want poll reference r-0102 after 2s", resp.GetPending())
	}
	poll := &backendv1.PollRevokeRequest{TransactionId: []byte{1, 2}, PollReference: "r-0102"}
	first, err := s.PollRevoke(ctx, poll)
	if err != nil || first.GetPending() == nil {
		t.Fatalf("first PollRevoke = %v, %v; want still pending", first, err)
	}
	second, err := s.PollRevoke(ctx, poll)
	if err != nil || second.GetPending() != nil {
		t.Fatalf("second PollRevoke = %v, %v; want done", second, err)
	}

	plain := &server{ca: struct {
		stubCore
		stubRevoker
	}{}}
	plain.configured.Store(true)
	if _, err := plain.PollRevoke(ctx, poll); status.Code(err) != codes.Unimplemented {
		t.Errorf("PollRevoke on a CA that never defers: %v, want Unimplemented", err)
	}
}
