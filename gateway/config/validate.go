package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FieldError is one problem in the configuration.
type FieldError struct {
	// Key is the path of the key, such as profiles[1].backend.
	Key string
	// Problem describes what is wrong and what to do, such as
	// `"foo" is not a configured backend; configured: softca`.
	Problem string
}

func (e *FieldError) Error() string {
	return e.Key + ": " + e.Problem
}

// Limits enforced by Validate.
const (
	minRequestBytes   = 1024
	maxRequestBytes   = 16 << 20
	minValidity       = time.Hour
	maxValidity       = 87600 * time.Hour // 10 years of 365 days
	minHealthInterval = time.Second
)

// knownKeyTypes are the values allowed in profiles[].key_types.
var knownKeyTypes = []string{"ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"}

// knownBuiltins are the backends compiled into certgate, selected with
// "builtin:<name>".
var knownBuiltins = []string{"softca", "upstream-cmp"}

var (
	backendNamePattern = regexp.MustCompile(`^[a-z0-9-]+$`)
	profileNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	dnsLabelPattern    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// Validate checks the whole configuration and returns every problem found, joined
// with errors.Join. Each problem is a *FieldError. Validate reads no files.
func (c *Config) Validate() error {
	v := &validator{}
	if c.DataDir == "" {
		v.add("data_dir", "is empty; set the folder for the database and generated secrets")
	}
	switch c.Database.Synchronous {
	case "normal", "full":
	default:
		v.addf("database.synchronous", "%q is not a synchronous setting; use normal or full", c.Database.Synchronous)
	}
	v.checkLog(&c.Log)
	v.checkHTTP(&c.HTTP)
	v.checkTCP(&c.TCP, c.Profiles)
	v.checkCMP(&c.CMP, c.Profiles)
	v.checkSCEP(&c.SCEP, c.Profiles)

	if len(c.Backends) == 0 {
		v.add("backends", `has no entry; add at least one, such as the built-in softca shown by "certgate config default"`)
	}
	backendNames := make(map[string]int, len(c.Backends))
	for i := range c.Backends {
		v.checkBackend(i, &c.Backends[i], backendNames)
	}

	if len(c.Profiles) == 0 {
		v.add("profiles", `has no entry; add at least one, such as the profile shown by "certgate config default"`)
	}
	profileNames := make(map[string]int, len(c.Profiles))
	for i := range c.Profiles {
		v.checkProfile(i, &c.Profiles[i], profileNames, c.Backends)
	}
	return errors.Join(v.problems...)
}

type validator struct {
	problems []error
}

func (v *validator) add(key, problem string) {
	v.problems = append(v.problems, &FieldError{Key: key, Problem: problem})
}

func (v *validator) addf(key, format string, args ...any) {
	v.add(key, fmt.Sprintf(format, args...))
}

// checkPositive adds a problem unless d is greater than zero.
func (v *validator) checkPositive(key string, d time.Duration, example string) {
	if d <= 0 {
		v.addf(key, "%s is not greater than 0; set a duration such as %s", d, example)
	}
}

func (v *validator) checkLog(l *Log) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.addf("log.level", "%q is not a log level; use debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		v.addf("log.format", "%q is not a log format; use text or json", l.Format)
	}
}

func (v *validator) checkHTTP(h *HTTP) {
	if len(h.Listen) == 0 {
		v.add("http.listen", "has no address; add at least one host:port, such as 127.0.0.1:8080")
	}
	v.checkListen("http.listen", h.Listen)

	if h.MaxRequestBytes < minRequestBytes || h.MaxRequestBytes > maxRequestBytes {
		v.addf("http.max_request_bytes", "%d is outside the range %d to %d", h.MaxRequestBytes, minRequestBytes, maxRequestBytes)
	}
	v.checkPositive("http.read_timeout", h.ReadTimeout, "30s")
	v.checkPositive("http.write_timeout", h.WriteTimeout, "30s")
	v.checkPositive("http.idle_timeout", h.IdleTimeout, "120s")
}

// checkListen checks a list of host:port listen addresses under key.
func (v *validator) checkListen(key string, addresses []string) {
	seen := make(map[string]int, len(addresses))
	for i, addr := range addresses {
		itemKey := fmt.Sprintf("%s[%d]", key, i)
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			v.addf(itemKey, "%q is not host:port (%v); write it as 127.0.0.1:8080, [::1]:8080 or :8080", addr, err)
			continue
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			v.addf(itemKey, "port %q of %q is not a number from 0 to 65535", port, addr)
			continue
		}
		// Port 0 picks a free port each time, so it may appear more than once.
		if n == 0 {
			continue
		}
		normalized := net.JoinHostPort(host, strconv.FormatUint(n, 10))
		if first, dup := seen[normalized]; dup {
			v.addf(itemKey, "%q is already listed at %s[%d]; remove one of them", addr, key, first)
			continue
		}
		seen[normalized] = i
	}
}

// checkTCP checks the raw TCP transfer. An empty listen list turns it off.
func (v *validator) checkTCP(t *TCP, profiles []Profile) {
	v.checkListen("tcp.listen", t.Listen)
	if t.Profile != "" && !slices.ContainsFunc(profiles, func(p Profile) bool { return p.Name == t.Profile }) {
		v.addf("tcp.profile", "%q is not a configured profile; configured: %s", t.Profile, profileNameList(profiles))
	}
	if t.MaxMessageBytes < minRequestBytes || t.MaxMessageBytes > maxRequestBytes {
		v.addf("tcp.max_message_bytes", "%d is outside the range %d to %d", t.MaxMessageBytes, minRequestBytes, maxRequestBytes)
	}
	v.checkPositive("tcp.read_timeout", t.ReadTimeout, "30s")
	v.checkPositive("tcp.idle_timeout", t.IdleTimeout, "120s")
	v.checkPositive("tcp.poll_after", t.PollAfter, "5s")
	if t.MaxConnectionsPerClient < 1 || t.MaxConnectionsPerClient > 10000 {
		v.addf("tcp.max_connections_per_client", "%d is outside the range 1 to 10000", t.MaxConnectionsPerClient)
	}
}

func (v *validator) checkCMP(c *CMP, profiles []Profile) {
	names := profileNameList(profiles)
	switch {
	case c.DefaultProfile == "":
		v.addf("cmp.default_profile", "is empty; set it to one of the profiles: %s", names)
	case !slices.ContainsFunc(profiles, func(p Profile) bool { return p.Name == c.DefaultProfile }):
		v.addf("cmp.default_profile", "%q is not a configured profile; configured: %s", c.DefaultProfile, names)
	}

	if c.MessageTimeTolerance < 0 {
		v.addf("cmp.message_time_tolerance", "%s is negative; set a duration such as 10m, or 0 to turn the check off", c.MessageTimeTolerance)
	}
	v.checkPositive("cmp.transaction_timeout", c.TransactionTimeout, "15m")

	r := c.Responder
	if r.CertificateFile == "" && r.KeyFile != "" {
		v.add("cmp.responder.certificate_file", "is empty but cmp.responder.key_file is set; set both files or neither")
	}
	if r.KeyFile == "" && r.CertificateFile != "" {
		v.add("cmp.responder.key_file", "is empty but cmp.responder.certificate_file is set; set both files or neither")
	}

	for i, f := range c.TrustedRootsFiles {
		if f == "" {
			v.addf(fmt.Sprintf("cmp.trusted_roots_files[%d]", i), "is empty; set the path of a PEM file or remove the entry")
		}
	}
	for i, f := range c.IntermediateFiles {
		if f == "" {
			v.addf(fmt.Sprintf("cmp.intermediate_files[%d]", i), "is empty; set the path of a PEM file or remove the entry")
		}
	}
}

// checkBackend checks backends[i]. names maps each name seen so far to its index.
func (v *validator) checkBackend(i int, b *Backend, names map[string]int) {
	key := fmt.Sprintf("backends[%d]", i)
	switch {
	case b.Name == "":
		v.add(key+".name", "is empty; set a name of lowercase letters, digits and hyphens, such as softca")
	case !backendNamePattern.MatchString(b.Name):
		v.addf(key+".name", "%q contains characters other than lowercase letters, digits and hyphens", b.Name)
	default:
		if first, dup := names[b.Name]; dup {
			v.addf(key+".name", "%q is already used by backends[%d]; give each backend its own name", b.Name, first)
		} else {
			names[b.Name] = i
		}
	}

	builtin, isBuiltin := b.Builtin()
	switch {
	case b.Plugin == "":
		v.addf(key+".plugin", "is empty; set builtin:<name> (built-ins: %s) or the path of a plugin executable", strings.Join(knownBuiltins, ", "))
	case isBuiltin:
		if !slices.Contains(knownBuiltins, builtin) {
			v.addf(key+".plugin", "%q is not a built-in backend; built-ins: %s", b.Plugin, strings.Join(knownBuiltins, ", "))
		}
		if b.SHA256 != "" {
			v.add(key+".sha256", "is set for a built-in backend; remove it, because only plugin executables are checked")
		}
		if len(b.Args) > 0 {
			v.add(key+".args", "is set for a built-in backend; remove it, because only plugin executables take arguments")
		}
	default:
		if b.SHA256 == "" {
			v.addf(key+".sha256", "is empty; set it to the SHA-256 digest of %s, as sha256sum prints it", b.Plugin)
		} else if raw, err := hex.DecodeString(b.SHA256); err != nil || len(raw) != 32 {
			v.addf(key+".sha256", "%q is not a SHA-256 digest; expected 64 hexadecimal digits, as sha256sum prints them", b.SHA256)
		}
	}

	if b.HealthInterval < minHealthInterval {
		v.addf(key+".health_interval", "%s is shorter than the minimum of %s; set a duration such as 10s", b.HealthInterval, minHealthInterval)
	}
}

// checkProfile checks profiles[i]. names maps each name seen so far to its index.
func (v *validator) checkProfile(i int, p *Profile, names map[string]int, backends []Backend) {
	key := fmt.Sprintf("profiles[%d]", i)
	switch {
	case p.Name == "":
		v.add(key+".name", `is empty; set a name of letters, digits, ".", "_" and "-", such as default`)
	case !profileNamePattern.MatchString(p.Name):
		v.addf(key+".name", `%q contains characters other than letters, digits, ".", "_" and "-"`, p.Name)
	case p.Name == "." || p.Name == "..":
		v.addf(key+".name", "%q is a relative path segment and cannot appear in a URL path; choose another name", p.Name)
	default:
		if first, dup := names[p.Name]; dup {
			v.addf(key+".name", "%q is already used by profiles[%d]; give each profile its own name", p.Name, first)
		} else {
			names[p.Name] = i
		}
	}

	backendList := backendNameList(backends)
	switch {
	case p.Backend == "":
		v.addf(key+".backend", "is empty; set it to one of the backends: %s", backendList)
	case !slices.ContainsFunc(backends, func(b Backend) bool { return b.Name == p.Backend }):
		v.addf(key+".backend", "%q is not a configured backend; configured: %s", p.Backend, backendList)
	}

	if p.Validity < minValidity || p.Validity > maxValidity {
		v.addf(key+".validity", "%s is outside the range 1h to 87600h", p.Validity)
	}

	v.checkKeyTypes(key, p.KeyTypes)
	v.checkSAN(key+".san", &p.SAN)
	v.checkMACSecrets(key, p.MACSecrets)
	for k, ra := range p.TrustedRAs {
		if strings.TrimSpace(ra) == "" {
			v.addf(fmt.Sprintf("%s.trusted_ras[%d]", key, k), "is empty; write mac:<reference> or a certificate subject such as CN=RA 1,O=Example")
		}
	}
	keygen := &p.CentralKeyGen
	switch {
	case keygen.Enabled && keygen.KeyType == "":
		v.addf(key+".central_keygen.key_type", "is empty; name the key type to generate, one of the profile's key_types")
	case keygen.Enabled && !slices.Contains(p.KeyTypes, keygen.KeyType):
		v.addf(key+".central_keygen.key_type", "%q is not one of the profile's key_types (%s)", keygen.KeyType, strings.Join(p.KeyTypes, ", "))
	case !keygen.Enabled && keygen.KeyRecovery:
		v.addf(key+".central_keygen.key_recovery", "is true, but central key generation is off, so no key is archived to recover; set enabled: true")
	}
}

func (v *validator) checkKeyTypes(profileKey string, keyTypes []string) {
	known := strings.Join(knownKeyTypes, ", ")
	if len(keyTypes) == 0 {
		v.addf(profileKey+".key_types", "is empty; list at least one of: %s", known)
	}
	seen := make(map[string]int, len(keyTypes))
	for j, kt := range keyTypes {
		key := fmt.Sprintf("%s.key_types[%d]", profileKey, j)
		if !slices.Contains(knownKeyTypes, kt) {
			v.addf(key, "%q is not a known key type; known: %s", kt, known)
			continue
		}
		if first, dup := seen[kt]; dup {
			v.addf(key, "%q is already listed at %s.key_types[%d]; remove one of them", kt, profileKey, first)
			continue
		}
		seen[kt] = j
	}
}

func (v *validator) checkSAN(key string, s *SAN) {
	if len(s.DNSSuffixes) > 0 && !s.AllowDNS {
		v.addf(key+".dns_suffixes", "is set but %s.allow_dns is false; remove the suffixes or set allow_dns: true", key)
	}
	for j, suffix := range s.DNSSuffixes {
		if problem := checkDNSSuffix(suffix); problem != "" {
			v.add(fmt.Sprintf("%s.dns_suffixes[%d]", key, j), problem)
		}
	}
}

// checkDNSSuffix returns what is wrong with a dns_suffixes entry, or "".
func checkDNSSuffix(suffix string) string {
	switch {
	case suffix == "":
		return "is empty; set a domain such as example.com or remove the entry"
	case strings.HasPrefix(suffix, "."):
		return fmt.Sprintf("%q starts with a dot; write the domain without it, such as %s", suffix, strings.TrimLeft(suffix, "."))
	case strings.HasSuffix(suffix, "."):
		return fmt.Sprintf("%q ends with a dot; write the domain without it", suffix)
	case len(suffix) > 253:
		return fmt.Sprintf("%q is longer than the 253 characters of a DNS name", suffix)
	}
	for label := range strings.SplitSeq(suffix, ".") {
		if !dnsLabelPattern.MatchString(label) {
			return fmt.Sprintf("%q is not a domain name: label %q must be 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen", suffix, label)
		}
	}
	return ""
}

func (v *validator) checkMACSecrets(profileKey string, secrets []MACSecretConfig) {
	seen := make(map[string]int, len(secrets))
	for j, s := range secrets {
		key := fmt.Sprintf("%s.mac_secrets[%d]", profileKey, j)
		if s.referenceMissing {
			v.add(key+".reference", `is missing; set it to the senderKID of the requests that use this secret, or to "" for requests without senderKID`)
		} else if first, dup := seen[s.Reference]; dup {
			v.addf(key+".reference", "%q is already used by %s.mac_secrets[%d]; each reference may appear once per profile", s.Reference, profileKey, first)
		} else {
			seen[s.Reference] = j
		}
		if s.SecretFile == "" {
			hint := "set the path of the file that contains the secret"
			if !s.Generate {
				hint += ", and set generate: true to have certgate create it"
			}
			v.add(key+".secret_file", "is empty; "+hint)
		}
	}
}

// backendNameList returns the backend names for a message, or "(none)".
func backendNameList(backends []Backend) string {
	names := make([]string, 0, len(backends))
	for i := range backends {
		if backends[i].Name != "" {
			names = append(names, backends[i].Name)
		}
	}
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// profileNameList returns the profile names for a message, or "(none)".
func profileNameList(profiles []Profile) string {
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
