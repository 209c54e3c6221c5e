// Package cmp is certgate's CMP transfer frontend: CMP over HTTP as RFC 9811 specifies it
// (which replaced RFC 6712). It hands each PKIMessage to the router unchanged, because the
// router speaks CMP natively and verifies CMP protection itself.
//
// Paths: POST /.well-known/cmp selects the default profile and
// /.well-known/cmp/p/<profile> a named one. An operation label of the IANA "CMP Well-Known
// URI Path Segments" registry (initialization, certification, keyupdate, pkcs10,
// revocation, getcacerts, ...) may follow either; the router reads the operation from the
// message body, so the label is accepted and ignored. Extra trailing slashes are
// accepted, as OpenSSL's test suite expects.
//
// Raw TCP transfer on port 829 is not part of this file.
package cmp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/certgate/certgate/gateway"
)

// ContentType is the media type of CMP messages (RFC 9811 section 3.4). OpenSSL 3.0
// compares the whole header value, so responses carry it without parameters.
const ContentType = "application/pkixcmp"

// WellKnownPath is the RFC 9811 base path.
const WellKnownPath = "/.well-known/cmp"

// DefaultMaxBodyBytes bounds a request body when the handler is given no limit. 256 KiB
// holds an OpenSSL request with a 100 KB certificate chain in extraCerts, the largest
// case in OpenSSL's own CMP tests.
const DefaultMaxBodyBytes = 256 << 10

// operationLabels are the path segments of the IANA CMP registry (RFC 9811 section 3.3).
var operationLabels = map[string]bool{
	"initialization": true, "certification": true, "keyupdate": true, "pkcs10": true,
	"revocation": true, "getcacerts": true, "getrootupdate": true, "getcertreqtemplate": true,
	"getcrls": true, "nested": true,
}

// Handler serves CMP over HTTP.
type Handler struct {
	Router       *gateway.Router
	MaxBodyBytes int64        // zero means DefaultMaxBodyBytes
	Logger       *slog.Logger // nil means no logging
}

// ProfileFromPath returns the profile named by a request path under WellKnownPath ("" for
// the default profile), or false when the path is not a CMP path.
func ProfileFromPath(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, WellKnownPath)
	if !ok {
		return "", false
	}
	rest = strings.TrimRight(rest, "/")
	if rest == "" {
		return "", true
	}
	segments := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	if segments[0] == "" {
		return "", false
	}
	profile := ""
	if segments[0] == "p" {
		if len(segments) < 2 || segments[1] == "" {
			return "", false
		}
		profile, segments = segments[1], segments[2:]
	}
	switch {
	case len(segments) == 0:
		return profile, true
	case len(segments) == 1 && operationLabels[segments[0]]:
		return profile, true
	}
	return "", false
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	profile, ok := ProfileFromPath(r.URL.Path)
	if !ok {
		h.fail(w, r, http.StatusNotFound, "not a CMP path; use "+WellKnownPath+" or "+WellKnownPath+"/p/<profile>")
		return
	}
	if _, ok := h.Router.Profile(profile); !ok {
		h.fail(w, r, http.StatusNotFound, fmt.Sprintf("profile %q is not configured", profile))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, http.StatusMethodNotAllowed, "CMP over HTTP uses POST")
		return
	}
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != ContentType {
		h.fail(w, r, http.StatusUnsupportedMediaType, "Content-Type must be "+ContentType)
		return
	}

	limit := h.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	origin := gateway.Origin{Frontend: "cmp", Profile: profile, RemoteAddr: r.RemoteAddr}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if !errors.As(err, &tooLarge) {
			h.logger().Warn("cannot read CMP request body", "remote", r.RemoteAddr, "error", err)
			return
		}
		// Answered in CMP terms, so that the client learns why; the connection is
		// closed because the rest of the body is not read.
		h.logger().Warn("CMP request too large", "remote", r.RemoteAddr, "limit", limit)
		w.Header().Set("Connection", "close")
		h.write(w, h.Router.TransportError(fmt.Sprintf("the request exceeds the limit of %d bytes", limit)))
		return
	}
	h.write(w, h.Router.Handle(r.Context(), origin, body))
}

func (h *Handler) write(w http.ResponseWriter, der []byte) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(der)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(der)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, text string) {
	h.logger().Warn("CMP HTTP request rejected", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "status", status, "detail", text)
	http.Error(w, text, status)
}
