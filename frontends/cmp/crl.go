package cmp

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/certgate/certgate/gateway"
)

// CRLPath is the base path of CRL downloads: CRLPath serves the default profile's CRL
// and CRLPath/<profile>.crl a named profile's, as DER with media type
// application/pkix-crl (RFC 5280 section 4.2.1.13 distribution points point here).
const CRLPath = "/crl"

// CRLHandler serves the CRLs of the profiles' backends over HTTP.
type CRLHandler struct {
	Router *gateway.Router
	Logger *slog.Logger
}

func (h *CRLHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "CRLs are fetched with GET", http.StatusMethodNotAllowed)
		return
	}
	profile := ""
	rest := strings.TrimPrefix(r.URL.Path, CRLPath)
	if rest != "" {
		name, ok := strings.CutSuffix(strings.TrimPrefix(rest, "/"), ".crl")
		if !ok || name == "" || strings.Contains(name, "/") {
			http.Error(w, "use "+CRLPath+" or "+CRLPath+"/<profile>.crl", http.StatusNotFound)
			return
		}
		profile = name
	}
	if _, ok := h.Router.Profile(profile); !ok {
		http.Error(w, fmt.Sprintf("profile %q is not configured", profile), http.StatusNotFound)
		return
	}
	crl, err := h.Router.CRL(r.Context(), profile)
	if err != nil {
		if h.Logger != nil {
			h.Logger.Error("CRL request failed", "profile", profile, "error", err)
		}
		http.Error(w, "the CA cannot produce a CRL now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Content-Length", fmt.Sprint(len(crl)))
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(time.Minute.Seconds())))
	w.Write(crl)
}
