package main

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"

	scepfrontend "github.com/certgate/certgate/frontends/scep"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/config"
)

// newSCEPHandler builds the SCEP frontend from the scep section, or returns nil when
// it is off. Each SCEP profile gets its challenge password and the RA credential of its
// CMP profile. A challenge file that cannot be read stops the start, as a MAC secret
// does. An RA certificate that cannot be issued only turns its SCEP profiles off, with
// an error in the log, because CMP keeps working without it.
func newSCEPHandler(ctx context.Context, cfg *config.Config, router *gateway.Router, logger *slog.Logger) (*scepfrontend.Handler, error) {
	if !cfg.SCEP.Enabled {
		return nil, nil
	}
	handler := &scepfrontend.Handler{
		Router: router, PathPrefix: cfg.SCEP.PathPrefix, DefaultProfile: cfg.SCEP.DefaultProfile,
		Profiles: map[string]*scepfrontend.Profile{}, MaxRequestBytes: cfg.HTTP.MaxRequestBytes, Logger: logger,
	}
	ras := map[string]*scepfrontend.RA{}
	for i := range cfg.SCEP.Profiles {
		p := &cfg.SCEP.Profiles[i]
		profile := &scepfrontend.Profile{
			Name: p.Name, CMPProfile: p.Profile,
			Legacy: scepfrontend.LegacyAlgorithms{
				DES: p.HasLegacyAlgorithm("des"), MD5: p.HasLegacyAlgorithm("md5"), SHA1: p.HasLegacyAlgorithm("sha1"),
			},
		}
		challenge, err := p.LoadChallenge()
		if err != nil {
			return nil, err
		}
		if challenge != nil {
			profile.Challenge = scepfrontend.StaticChallenge(challenge)
		}

		cmpProfile := cmpProfileName(cfg, p.Profile)
		ra, loaded := ras[cmpProfile]
		if !loaded {
			ra, err = scepfrontend.LoadRA(ctx, router, filepath.Join(cfg.DataDir, "scep"), cmpProfile, logger)
			if err != nil {
				logger.Error("SCEP is off for this profile: its RA certificate cannot be issued", "scep_profile", p.Name,
					"profile", cmpProfile, "error", err,
					"fix", "allow rsa-2048 in the CMP profile's key_types and check its backend, or set scep.enabled: false")
			}
			ras[cmpProfile] = ra
		}
		profile.RA = ra
		handler.Profiles[p.Name] = profile
	}
	return handler, nil
}

// withSCEP sends the requests under prefix to the SCEP handler and the others to next.
func withSCEP(next http.Handler, prefix string, scep *scepfrontend.Handler) http.Handler {
	if scep == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, prefix+"/") {
			scep.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// logSCEPEnrollment logs the SCEP URL and the file of the default SCEP profile's
// challenge password, never the challenge itself.
func logSCEPEnrollment(logger *slog.Logger, cfg *config.Config, scep *scepfrontend.Handler, address string) {
	if scep == nil {
		return
	}
	url := "http://" + address + cfg.SCEP.PathPrefix
	for _, p := range cfg.SCEP.Profiles {
		if p.Name != cfg.SCEP.DefaultProfile {
			continue
		}
		raFile := filepath.Join(cfg.DataDir, "scep", "ra-"+cmpProfileName(cfg, p.Profile)+".crt")
		command := "pki --scepca --url " + url + " --caout ca.der --raout ra.der && pki --scep --url " + url +
			" --in device1.key --dn CN=device1 --password \"$(cat " + p.Challenge.SecretFile + ")\" --cacert-enc ra.der --cacert-sig ra.der"
		logger.Info("SCEP listening", "url", url, "profile", p.Name, "challenge_file", p.Challenge.SecretFile,
			"ra_certificate", raFile, "command", command)
	}
}

// cmpProfileName resolves the CMP profile of a SCEP profile, where "" is the default.
func cmpProfileName(cfg *config.Config, name string) string {
	if name == "" {
		return cfg.CMP.DefaultProfile
	}
	return name
}
