package scep

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/store"
)

// DefaultPathPrefix is the URL path of SCEP when the configuration names none.
const DefaultPathPrefix = "/scep"

// DefaultMaxRequestBytes bounds a PKIOperation message when the handler is given no
// limit. A PKCSReq with a 4096-bit key, a self-signed certificate and a challenge is
// under 8 KiB; 64 KiB leaves room for a client that adds its certificate chain.
const DefaultMaxRequestBytes = 64 << 10

// RAKey is the private key of the RA certificate: it decrypts requests and signs
// responses. SCEP encrypts to RSA keys, so it is an RSA key.
type RAKey interface {
	crypto.Signer
	crypto.Decrypter
}

// RA is the credential that decrypts requests and signs CertReps for one CMP profile.
// The gateway holds no CA key, so it acts as the RA of RFC 8894 section 2.1.
type RA struct {
	Certificate *x509.Certificate
	Key         RAKey
}

// Profile is one SCEP endpoint and the CMP profile its requests go to.
type Profile struct {
	// Name selects the profile in the path <prefix>/p/<Name>; Handler.DefaultProfile
	// names the one served at the prefix itself.
	Name string
	// CMPProfile is the router profile; "" is the router's default profile.
	CMPProfile string
	// Challenge checks the challenge password of a PKCSReq. When nil, every PKCSReq is
	// rejected and only RenewalReq enrolls.
	Challenge ChallengeValidator
	Legacy    LegacyAlgorithms
	// RA decrypts requests and signs responses. When nil, the profile responds to
	// every request with HTTP 503.
	RA *RA
	// NextCA is the certificate of the CA that replaces the current one at rollover,
	// followed by its chain. When it is set, GetCACaps lists GetNextCACert and
	// GetNextCACert returns these certificates signed by the RA key. When nil,
	// GetNextCACert gets HTTP 404.
	NextCA []*x509.Certificate
}

// Handler serves SCEP over HTTP. Every path under PathPrefix is accepted and the part
// after it is ignored (RFC 8894 section 4.1 lets clients choose it, and most send
// /cgi-bin/pkiclient.exe), except <prefix>/p/<name>[/...], which selects a named
// profile.
type Handler struct {
	Router          *gateway.Router
	PathPrefix      string // "" means DefaultPathPrefix
	Profiles        map[string]*Profile
	DefaultProfile  string
	MaxRequestBytes int64        // zero means DefaultMaxRequestBytes
	Logger          *slog.Logger // nil means no logging
	// Store keeps pending enrollments, so that clients can poll after a restart or
	// through another instance that shares it. nil keeps them in this process's memory.
	Store store.Store

	pending pendingTable
}

// capabilities are the GetCACaps keywords of every profile (RFC 8894 section 3.5.2),
// in the exact case the RFC requires. Profiles that allow SHA-1 add SHA-1, and profiles
// with a next CA add GetNextCACert. SHA-384 is no RFC 8894 keyword, which clients
// ignore, but strongSwan pki 5.9.8 tests its capability flags with shifted bits and
// accepts AES only when SHA-384 is listed.
var capabilities = []string{"AES", "DES3", "POSTPKIOperation", "Renewal", "SCEPStandard", "SHA-256", "SHA-384", "SHA-512"}

// event is the one log line of a request, filled in while the request is handled.
type event struct {
	operation     string
	profile       string
	transactionID string
	status        string
	failInfo      string
	detail        string
	err           error
	httpStatus    int
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

func (h *Handler) prefix() string {
	if h.PathPrefix == "" {
		return DefaultPathPrefix
	}
	return strings.TrimRight(h.PathPrefix, "/")
}

// profileFromPath returns the profile a request path selects.
func (h *Handler) profileFromPath(path string) (*Profile, error) {
	rest, ok := strings.CutPrefix(path, h.prefix())
	if !ok || (rest != "" && rest[0] != '/') {
		return nil, fmt.Errorf("not a SCEP path; use %s", h.prefix())
	}
	name := h.DefaultProfile
	if named, ok := strings.CutPrefix(rest, "/p/"); ok {
		name, _, _ = strings.Cut(named, "/")
		if name == "" {
			return nil, fmt.Errorf("no profile name after %s/p/", h.prefix())
		}
	}
	profile, ok := h.Profiles[name]
	if !ok {
		return nil, fmt.Errorf("SCEP profile %q is not configured", name)
	}
	return profile, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ev := &event{}
	defer func() { h.logRequest(r, ev, start) }()

	profile, err := h.profileFromPath(r.URL.Path)
	if err != nil {
		h.fail(w, ev, http.StatusNotFound, err.Error())
		return
	}
	ev.profile = profile.Name
	if profile.RA == nil {
		h.fail(w, ev, http.StatusServiceUnavailable, fmt.Sprintf("SCEP profile %q is off: it has no RA certificate; the gateway log says why", profile.Name))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		h.fail(w, ev, http.StatusMethodNotAllowed, "SCEP uses GET and POST")
		return
	}
	operation, _, err := rawQueryValue(r.URL.RawQuery, "operation")
	if err != nil {
		h.fail(w, ev, http.StatusBadRequest, "the query string is not valid percent-encoding")
		return
	}
	ev.operation = operation
	switch {
	case strings.EqualFold(operation, opGetCACaps):
		h.getCACaps(w, profile, ev)
	case strings.EqualFold(operation, opGetCACert):
		h.getCACert(r.Context(), w, profile, ev)
	case strings.EqualFold(operation, opPKIOperation):
		h.servePKIOperation(w, r, profile, ev)
	case strings.EqualFold(operation, opGetNextCACert):
		h.getNextCACert(w, profile, ev)
	case operation == "":
		h.fail(w, ev, http.StatusBadRequest, "the operation query parameter is missing")
	default:
		h.fail(w, ev, http.StatusBadRequest, fmt.Sprintf("unknown operation %q", operation))
	}
}

func (h *Handler) getCACaps(w http.ResponseWriter, profile *Profile, ev *event) {
	caps := slices.Clone(capabilities)
	if len(profile.NextCA) > 0 {
		caps = append(caps, "GetNextCACert")
	}
	if profile.Legacy.SHA1 {
		caps = append(caps, "SHA-1")
	}
	slices.Sort(caps)
	// RFC 8894 section 3.5.2: keywords in any order, separated by LF, which every
	// client reads.
	body := strings.Join(caps, "\n") + "\n"
	ev.httpStatus = http.StatusOK
	w.Header().Set("Content-Type", contentTypeCACaps)
	w.Write([]byte(body))
}

// getCACert returns the RA certificate and the CA chain as a degenerate certs-only
// SignedData (RFC 8894 section 4.2.1.2), the RA certificate first.
func (h *Handler) getCACert(ctx context.Context, w http.ResponseWriter, profile *Profile, ev *event) {
	chain, err := h.Router.CAChain(ctx, profile.CMPProfile)
	if err != nil {
		ev.err = err
		h.fail(w, ev, http.StatusServiceUnavailable, "the CA chain is not available now; retry later")
		return
	}
	der, err := Degenerate(append([]*x509.Certificate{profile.RA.Certificate}, chain...), nil)
	if err != nil {
		ev.err = err
		h.fail(w, ev, http.StatusInternalServerError, "internal error")
		return
	}
	h.writeDER(w, ev, contentTypeCARA, der)
}

// getNextCACert returns the next CA certificates of a profile (RFC 8894 section 4.7),
// signed by the RA key because the gateway holds no CA key.
func (h *Handler) getNextCACert(w http.ResponseWriter, profile *Profile, ev *event) {
	if len(profile.NextCA) == 0 {
		h.fail(w, ev, http.StatusNotFound, fmt.Sprintf(
			"SCEP profile %q has no next CA certificate: no CA rollover is configured, so GetCACaps does not list GetNextCACert", profile.Name))
		return
	}
	der, err := NextCAResponse(profile.NextCA, profile.RA.Certificate, profile.RA.Key)
	if err != nil {
		ev.err = err
		h.fail(w, ev, http.StatusInternalServerError, "internal error")
		return
	}
	h.writeDER(w, ev, contentTypeNextCA, der)
}

// servePKIOperation reads the pkiMessage of a GET or POST PKIOperation and writes the
// CertRep.
func (h *Handler) servePKIOperation(w http.ResponseWriter, r *http.Request, profile *Profile, ev *event) {
	limit := h.MaxRequestBytes
	if limit <= 0 {
		limit = DefaultMaxRequestBytes
	}
	der, status, detail := readMessage(w, r, limit)
	if status != 0 {
		if status == http.StatusRequestEntityTooLarge {
			w.Header().Set("Connection", "close")
		}
		h.fail(w, ev, status, detail)
		return
	}
	resp, status, detail := h.pkiOperation(r.Context(), profile, der, r.RemoteAddr, ev)
	if status != http.StatusOK {
		h.fail(w, ev, status, detail)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.writeDER(w, ev, contentTypeMessage, resp)
}

// writeDER writes a successful response with its content type and length.
func (h *Handler) writeDER(w http.ResponseWriter, ev *event, contentType string, der []byte) {
	ev.httpStatus = http.StatusOK
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(der)))
	w.Write(der)
}

// readMessage returns the DER pkiMessage of a request: the base64 message parameter of
// a GET, or the body of a POST. The body is DER by RFC 8894 section 4.3; a body that
// does not start like DER is read as base64, as some clients send it. A non-zero status
// is the HTTP error to send.
func readMessage(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, string) {
	tooLarge := fmt.Sprintf("the message exceeds the limit of %d bytes", limit)
	if r.Method == http.MethodGet {
		text, ok, err := rawQueryValue(r.URL.RawQuery, "message")
		switch {
		case err != nil:
			return nil, http.StatusBadRequest, "the message parameter is not valid percent-encoding"
		case !ok || text == "":
			return nil, http.StatusBadRequest, "a GET PKIOperation needs the message parameter"
		case int64(len(text)) > limit*4/3+4:
			return nil, http.StatusRequestEntityTooLarge, tooLarge
		}
		der, err := decodeBase64(text)
		if err != nil {
			return nil, http.StatusBadRequest, "the message parameter is not base64"
		}
		return der, 0, ""
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, http.StatusRequestEntityTooLarge, tooLarge
		}
		return nil, http.StatusBadRequest, "the request body could not be read"
	}
	if len(body) == 0 {
		return nil, http.StatusBadRequest, "a POST PKIOperation needs the pkiMessage as its body"
	}
	if body[0] != 0x30 {
		der, err := decodeBase64(string(bytes.TrimSpace(body)))
		if err != nil {
			return nil, http.StatusBadRequest, "the body is neither a DER pkiMessage nor base64"
		}
		return der, 0, ""
	}
	return body, 0, ""
}

func (h *Handler) fail(w http.ResponseWriter, ev *event, status int, detail string) {
	ev.httpStatus = status
	if ev.detail == "" {
		ev.detail = detail
	}
	http.Error(w, detail, status)
}

// logRequest writes the one log line of a request. The challenge password and the
// request itself are never logged.
func (h *Handler) logRequest(r *http.Request, ev *event, start time.Time) {
	attrs := []any{
		keyFrontend, "scep", keyOperation, ev.operation, keyProfile, ev.profile,
		keyRemote, r.RemoteAddr, keyMethod, r.Method, keyHTTPStatus, ev.httpStatus,
		keyDuration, time.Since(start),
	}
	if ev.transactionID != "" {
		attrs = append(attrs, keyTransactionID, ev.transactionID)
	}
	if ev.status != "" {
		attrs = append(attrs, keyStatus, ev.status)
	}
	level := slog.LevelInfo
	if ev.failInfo != "" {
		attrs = append(attrs, keyFailInfo, ev.failInfo)
		level = slog.LevelWarn
	}
	if ev.httpStatus >= 400 {
		level = slog.LevelWarn
	}
	if ev.detail != "" {
		attrs = append(attrs, keyDetail, ev.detail)
	}
	if ev.err != nil {
		attrs = append(attrs, keyError, ev.err)
	}
	h.logger().Log(context.Background(), level, "scep request", attrs...)
}
