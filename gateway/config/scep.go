package config

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SCEP is the configuration of the SCEP frontend (RFC 8894). It is served by the HTTP
// listeners of the http section, under PathPrefix.
type SCEP struct {
	Enabled bool `yaml:"enabled"`
	// PathPrefix is the URL path of SCEP, such as /scep. Every path below it is
	// accepted, except <prefix>/p/<name>, which selects a named profile.
	PathPrefix string `yaml:"path_prefix"`
	// DefaultProfile names the SCEP profile served at PathPrefix itself.
	DefaultProfile string        `yaml:"default_profile"`
	Profiles       []SCEPProfile `yaml:"profiles"`
}

// SCEPProfile is one SCEP endpoint and the CMP profile its requests go to.
type SCEPProfile struct {
	Name string `yaml:"name"`
	// Profile names the CMP profile; "" is cmp.default_profile.
	Profile   string        `yaml:"profile"`
	Challenge SCEPChallenge `yaml:"challenge"`
	// LegacyAlgorithms lists the algorithms below RFC 8894 section 2.9 that the profile
	// accepts: des (single DES content encryption), md5 and sha1 (message digests).
	LegacyAlgorithms []string `yaml:"legacy_algorithms"`
	// NextCAFile names a PEM file with the certificate of the CA that replaces the
	// current one at rollover, optionally followed by its chain. When it is set, the
	// profile serves GetNextCACert (RFC 8894 section 4.7). SCEPProfile.LoadNextCA
	// reads it, and Load checks it.
	NextCAFile string `yaml:"next_ca_file"`
}

// SCEPChallenge names the file of the static challenge password of a SCEP profile.
// SCEPProfile.LoadChallenge reads it.
type SCEPChallenge struct {
	// SecretFile holds the challenge password. Empty means no challenge: the profile
	// then rejects every PKCSReq and accepts only RenewalReq.
	SecretFile string `yaml:"secret_file"`
	// Generate creates SecretFile with a random challenge when it is missing.
	Generate bool `yaml:"generate"`
}

// knownLegacyAlgorithms are the values allowed in scep.profiles[].legacy_algorithms.
var knownLegacyAlgorithms = []string{"des", "md5", "sha1"}

// scepPathPattern is a path of one or more segments of URL-safe characters.
var scepPathPattern = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)

// reservedPaths are the path prefixes of the other frontends.
var reservedPaths = []string{"/.well-known/cmp", "/crl"}

// LoadChallenge reads the challenge password of p, or returns nil when p has none. A
// missing file is created when generate is true. The file rules are those of
// LoadMACSecrets: mode 0600, at most 4096 bytes, one trailing newline removed.
func (p *SCEPProfile) LoadChallenge() ([]byte, error) {
	if p.Challenge.SecretFile == "" {
		return nil, nil
	}
	secret, err := loadSecretFile(p.Challenge.SecretFile, p.Challenge.Generate)
	if err != nil {
		return nil, fmt.Errorf("config: scep profile %q, challenge: %w", p.Name, err)
	}
	return secret, nil
}

// LoadNextCA reads the next_ca_file of p and returns its certificates in file order,
// or nil when p has none. Every PEM block must be a certificate of a CA that is not
// expired.
func (p *SCEPProfile) LoadNextCA() ([]*x509.Certificate, error) {
	if p.NextCAFile == "" {
		return nil, nil
	}
	certs, err := readNextCAFile(p.NextCAFile)
	if err != nil {
		return nil, fmt.Errorf("config: scep profile %q, next_ca_file: %w", p.Name, err)
	}
	return certs, nil
}

// readNextCAFile reads and checks a next_ca_file. Its errors name the file and what
// to change.
func readNextCAFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %w; set the path of the PEM file with the next CA certificate, or remove next_ca_file", err)
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		position := len(certs) + 1
		switch {
		case strings.Contains(block.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("%s contains a private key (PEM block %d); remove it, because the file must contain only certificates", path, position)
		case block.Type != "CERTIFICATE":
			return nil, fmt.Errorf("%s contains a %q PEM block (block %d); it must contain only CERTIFICATE blocks", path, block.Type, position)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d is invalid: %w", path, position, err)
		}
		if err := checkNextCACertificate(cert); err != nil {
			return nil, fmt.Errorf("%s: certificate %d (%s) %w", path, position, cert.Subject, err)
		}
		certs = append(certs, cert)
	}
	// pem.Decode stops at a block it cannot decode, such as one with broken base64,
	// and would leave the certificates after it out.
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("%s: PEM block %d cannot be decoded; check its BEGIN and END lines and its base64", path, len(certs)+1)
	}
	if len(certs) == 0 {
		if _, err := x509.ParseCertificate(data); err == nil {
			return nil, fmt.Errorf("%s is a DER certificate; convert it to PEM with: openssl x509 -inform DER -in %s -out next-ca.pem", path, path)
		}
		return nil, fmt.Errorf("%s contains no PEM certificate; write the next CA certificate first, then its chain, each as a -----BEGIN CERTIFICATE----- block", path)
	}
	return certs, nil
}

// checkNextCACertificate returns an error that completes the sentence "certificate N
// (subject) ..." when cert cannot be a CA certificate to roll over to.
func checkNextCACertificate(cert *x509.Certificate) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return errors.New("is not a CA certificate: it lacks basicConstraints with cA set; the file must contain the next CA certificate and its CA chain only")
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return errors.New("is not a CA certificate: its keyUsage lacks keyCertSign")
	case time.Now().After(cert.NotAfter):
		return fmt.Errorf("expired on %s; replace it with the current certificate of that CA", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkSCEPFiles reports each next_ca_file of an enabled scep section that
// readNextCAFile rejects, under its key.
func (c *Config) checkSCEPFiles() error {
	if !c.SCEP.Enabled {
		return nil
	}
	v := &validator{}
	for i := range c.SCEP.Profiles {
		if file := c.SCEP.Profiles[i].NextCAFile; file != "" {
			if _, err := readNextCAFile(file); err != nil {
				v.addf(fmt.Sprintf("scep.profiles[%d].next_ca_file", i), "%v", err)
			}
		}
	}
	return errors.Join(v.problems...)
}

// HasLegacyAlgorithm reports whether p lists name in legacy_algorithms.
func (p *SCEPProfile) HasLegacyAlgorithm(name string) bool {
	return slices.Contains(p.LegacyAlgorithms, name)
}

func (v *validator) checkSCEP(s *SCEP, profiles []Profile) {
	if !s.Enabled {
		return
	}
	switch {
	case !scepPathPattern.MatchString(s.PathPrefix):
		v.addf("scep.path_prefix", "%q is not a URL path; write it as /scep, with a leading slash and no trailing one", s.PathPrefix)
	default:
		for _, reserved := range reservedPaths {
			if pathsOverlap(s.PathPrefix, reserved) {
				v.addf("scep.path_prefix", "%q overlaps %s, which another frontend serves; choose another path such as /scep", s.PathPrefix, reserved)
			}
		}
	}

	if len(s.Profiles) == 0 {
		v.add("scep.profiles", `has no entry; add one, such as the profile shown by "certgate config default", or set scep.enabled: false`)
	}
	names := make(map[string]int, len(s.Profiles))
	for i := range s.Profiles {
		v.checkSCEPProfile(i, &s.Profiles[i], names, profiles)
	}
	if _, ok := names[s.DefaultProfile]; !ok && len(s.Profiles) > 0 {
		v.addf("scep.default_profile", "%q is not a SCEP profile; configured: %s", s.DefaultProfile, scepProfileNameList(s.Profiles))
	}
}

func (v *validator) checkSCEPProfile(i int, p *SCEPProfile, names map[string]int, profiles []Profile) {
	key := fmt.Sprintf("scep.profiles[%d]", i)
	switch {
	case p.Name == "":
		v.add(key+".name", `is empty; set a name of letters, digits, ".", "_" and "-", such as default`)
	case !profileNamePattern.MatchString(p.Name) || p.Name == "." || p.Name == "..":
		v.addf(key+".name", `%q must be letters, digits, ".", "_" and "-", and not "." or ".."`, p.Name)
	default:
		if first, dup := names[p.Name]; dup {
			v.addf(key+".name", "%q is already used by scep.profiles[%d]; give each SCEP profile its own name", p.Name, first)
		} else {
			names[p.Name] = i
		}
	}
	if p.Profile != "" && !slices.ContainsFunc(profiles, func(cp Profile) bool { return cp.Name == p.Profile }) {
		v.addf(key+".profile", `%q is not a configured profile; configured: %s, or "" for cmp.default_profile`, p.Profile, profileNameList(profiles))
	}
	if p.Challenge.Generate && p.Challenge.SecretFile == "" {
		v.add(key+".challenge.secret_file", "is empty but generate is true; set the path of the file to create")
	}
	seen := make(map[string]int, len(p.LegacyAlgorithms))
	for j, name := range p.LegacyAlgorithms {
		itemKey := fmt.Sprintf("%s.legacy_algorithms[%d]", key, j)
		if !slices.Contains(knownLegacyAlgorithms, name) {
			v.addf(itemKey, "%q is not a legacy algorithm; known: %s", name, strings.Join(knownLegacyAlgorithms, ", "))
			continue
		}
		if first, dup := seen[name]; dup {
			v.addf(itemKey, "%q is already listed at %s.legacy_algorithms[%d]; remove one of them", name, key, first)
			continue
		}
		seen[name] = j
	}
}

// pathsOverlap reports whether one path equals the other or lies below it.
func pathsOverlap(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

func scepProfileNameList(profiles []SCEPProfile) string {
	names := make([]string, 0, len(profiles))
	for i := range profiles {
		if profiles[i].Name != "" {
			names = append(names, profiles[i].Name)
		}
	}
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}
