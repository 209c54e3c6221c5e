package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	scepfrontend "github.com/certgate/certgate/frontends/scep"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/config"
	"github.com/certgate/certgate/gateway/store"
)

// newSCEPHandler builds the SCEP frontend from the scep section, or returns nil when
// it is off. Each SCEP profile gets its challenge password, its next CA certificates
// and the RA credential of its CMP profile. A challenge or next CA file that cannot be
// read stops the start, as a MAC secret does. An RA certificate that cannot be issued
// only turns its SCEP profiles off, with an error in the log, because CMP keeps
// working without it.
func newSCEPHandler(ctx context.Context, cfg *config.Config, router *gateway.Router, db store.Store, logger *slog.Logger) (*scepfrontend.Handler, error) {
	if !cfg.SCEP.Enabled {
		return nil, nil
	}
	handler := &scepfrontend.Handler{
		Router: router, PathPrefix: cfg.SCEP.PathPrefix, DefaultProfile: cfg.SCEP.DefaultProfile,
		Profiles: map[string]*scepfrontend.Profile{}, MaxRequestBytes: cfg.HTTP.MaxRequestBytes, Logger: logger,
		Store: db,
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
		// The static challenge is tried first, so that it never consumes a one-time
		// challenge that happens to be equal.
		var validators []scepfrontend.ChallengeValidator
		if challenge != nil {
			validators = append(validators, scepfrontend.StaticChallenge(challenge))
		}
		validators = append(validators, newOneTimeChallenges(db, p.Name, logger))
		profile.Challenge = anyChallenge(validators)
		if profile.NextCA, err = p.LoadNextCA(); err != nil {
			return nil, err
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
		if profile.NextCA != nil && ra != nil {
			logNextCA(ctx, router, cmpProfile, p, profile.NextCA[0], logger)
		}
		handler.Profiles[p.Name] = profile
	}
	return handler, nil
}

// logNextCA logs that a SCEP profile serves GetNextCACert, and warns when its next CA
// is already the CMP profile's issuing CA: clients then receive the current CA as the
// next one, and next_ca_file is due to be removed.
func logNextCA(ctx context.Context, router *gateway.Router, cmpProfile string, p *config.SCEPProfile, next *x509.Certificate, logger *slog.Logger) {
	logger.Info("SCEP GetNextCACert serves the next CA", "scep_profile", p.Name, "file", p.NextCAFile,
		"subject", next.Subject.String(), "not_before", next.NotBefore, "not_after", next.NotAfter)
	chain, err := router.CAChain(ctx, cmpProfile)
	if err != nil || len(chain) == 0 {
		logger.Warn("cannot compare the next CA with the current issuing CA", "scep_profile", p.Name, "profile", cmpProfile, "error", err)
		return
	}
	if chain[0].Equal(next) {
		logger.Warn("the next CA of a SCEP profile is its current issuing CA; remove next_ca_file once the rollover is done",
			"scep_profile", p.Name, "file", p.NextCAFile, "subject", next.Subject.String())
	}
}

// oneTimeChallenges accepts a challenge that "certgate scep challenge" issued for the
// SCEP profile, and consumes it. When the enrollment then fails before a certificate
// exists, on policy for example, FinishChallenge puts the challenge back, so that the
// device can try again.
type oneTimeChallenges struct {
	db      store.Store
	profile string
	logger  *slog.Logger

	mu       sync.Mutex
	consumed map[*scepfrontend.ChallengeRequest]*store.Challenge // accepted, not yet finished
}

func newOneTimeChallenges(db store.Store, profile string, logger *slog.Logger) *oneTimeChallenges {
	return &oneTimeChallenges{db: db, profile: profile, logger: logger, consumed: map[*scepfrontend.ChallengeRequest]*store.Challenge{}}
}

// ValidateChallenge implements scepfrontend.ChallengeValidator.
func (o *oneTimeChallenges) ValidateChallenge(ctx context.Context, req *scepfrontend.ChallengeRequest) error {
	if req.Challenge == "" {
		return scepfrontend.ErrChallengeInvalid
	}
	digest := sha256.Sum256([]byte(req.Challenge))
	challenge, err := o.db.ConsumeChallenge(ctx, digest[:], o.profile, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return scepfrontend.ErrChallengeInvalid
	}
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.consumed[req] = challenge
	o.mu.Unlock()
	return nil
}

// FinishChallenge implements scepfrontend.ChallengeFinisher.
func (o *oneTimeChallenges) FinishChallenge(ctx context.Context, req *scepfrontend.ChallengeRequest, used bool) {
	o.mu.Lock()
	challenge, ok := o.consumed[req]
	delete(o.consumed, req)
	o.mu.Unlock()
	if !ok || used {
		return
	}
	if err := o.db.CreateChallenge(ctx, challenge); err != nil {
		o.logger.Error("cannot restore a one-time SCEP challenge after a failed enrollment; issue a new one",
			"scep_profile", o.profile, "transaction_id", req.TransactionID, "note", challenge.Note, "error", err)
		return
	}
	o.logger.Info("one-time SCEP challenge restored after a failed enrollment",
		"scep_profile", o.profile, "transaction_id", req.TransactionID, "note", challenge.Note)
}

// anyChallenge accepts a challenge that one of validators accepts, tried in order.
// FinishChallenge reaches every validator that implements it, and each acts only on
// the requests it accepted.
type anyChallenge []scepfrontend.ChallengeValidator

// ValidateChallenge implements scepfrontend.ChallengeValidator.
func (validators anyChallenge) ValidateChallenge(ctx context.Context, req *scepfrontend.ChallengeRequest) error {
	err := scepfrontend.ErrChallengeInvalid
	for _, validator := range validators {
		if err = validator.ValidateChallenge(ctx, req); err == nil || !errors.Is(err, scepfrontend.ErrChallengeInvalid) {
			return err
		}
	}
	return err
}

// FinishChallenge implements scepfrontend.ChallengeFinisher.
func (validators anyChallenge) FinishChallenge(ctx context.Context, req *scepfrontend.ChallengeRequest, used bool) {
	for _, validator := range validators {
		if finisher, ok := validator.(scepfrontend.ChallengeFinisher); ok {
			finisher.FinishChallenge(ctx, req, used)
		}
	}
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
			logger.Info("SCEP profile listening", "url", url+"/p/"+p.Name, "profile", p.Name, "challenge_file", p.Challenge.SecretFile)
			continue
		}
		raFile := filepath.Join(cfg.DataDir, "scep", "ra-"+cmpProfileName(cfg, p.Profile)+".crt")
		// The same commands as docs/scep.md: an RSA key, because strongSwan's SCEP client
		// signs with RSA, and the CA certificates that GetCACert saved as ca.der and
		// ca-1.der, so that pki can verify the issued certificate. The challenge is
		// letters and digits, so it needs no quotes, which the text log would escape.
		command := "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out scep-device1.key && " +
			"pki --scepca --url " + url + " --caout ca.der --raout ra.der && pki --scep --url " + url +
			" --in scep-device1.key --dn CN=device1 --password $(cat " + p.Challenge.SecretFile + ")" +
			" --cacert-enc ra.der --cacert-sig ra.der --cacert ca.der --cacert ca-1.der --outform pem > scep-device1.crt"
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
