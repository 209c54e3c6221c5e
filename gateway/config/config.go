// Package config loads the certgate configuration file.
//
// The file is YAML and is decoded strictly: a key that no field declares, a value
// of the wrong type and a repeated key are errors that name the line. The embedded
// default.yaml is the default configuration and its documentation. Load starts
// from it, so a configuration file needs only the keys it changes, and
// DefaultYAML returns it for printing.
//
// After Load or Default every relative path in the Config has been replaced by an
// absolute one. The original relative form is not kept.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// builtinPrefix starts the plugin value of a backend compiled into certgate.
const builtinPrefix = "builtin:"

// Config is the whole certgate configuration. The YAML key of each field is in its
// tag, and default.yaml documents every key.
type Config struct {
	// DataDir is the folder of the database and of generated secrets.
	DataDir  string    `yaml:"data_dir"`
	Database Database  `yaml:"database"`
	Log      Log       `yaml:"log"`
	HTTP     HTTP      `yaml:"http"`
	TCP      TCP       `yaml:"tcp"`
	CMP      CMP       `yaml:"cmp"`
	SCEP     SCEP      `yaml:"scep"`
	Backends []Backend `yaml:"backends"`
	Profiles []Profile `yaml:"profiles"`
}

// Database configures the SQLite database in data_dir.
type Database struct {
	// Synchronous is "normal" or "full", SQLite's synchronous setting in WAL mode.
	Synchronous string `yaml:"synchronous"`
}

// Log is the log output configuration.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// HTTP is the configuration of the HTTP listeners that receive CMP messages.
type HTTP struct {
	Listen          []string      `yaml:"listen"` // host:port, port 0 picks a free port
	MaxRequestBytes int64         `yaml:"max_request_bytes"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
}

// TCP is the configuration of CMP over raw TCP: the RFC 2510 framing, the version-10
// framing of the CMP transport draft, and HTTP, told apart on one port.
type TCP struct {
	Listen                  []string      `yaml:"listen"`  // host:port; empty turns TCP off
	Profile                 string        `yaml:"profile"` // profile of framed requests; "" is cmp.default_profile
	MaxMessageBytes         int           `yaml:"max_message_bytes"`
	ReadTimeout             time.Duration `yaml:"read_timeout"`
	IdleTimeout             time.Duration `yaml:"idle_timeout"`
	MaxConnectionsPerClient int           `yaml:"max_connections_per_client"`
	PollAfter               time.Duration `yaml:"poll_after"`
}

// CMP is the configuration of the CMP server that is common to all profiles.
type CMP struct {
	DefaultProfile string `yaml:"default_profile"`
	// MessageTimeTolerance is the maximum allowed skew of messageTime. Zero turns
	// the check off.
	MessageTimeTolerance time.Duration `yaml:"message_time_tolerance"`
	// TransactionTimeout is how long an open transaction is kept while the server
	// waits for certConf or for the client to poll.
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	Responder          Responder     `yaml:"responder"`
	TrustedRootsFiles  []string      `yaml:"trusted_roots_files"`
	IntermediateFiles  []string      `yaml:"intermediate_files"`
}

// Responder names the files of the certificate and key that sign responses. Both
// are empty or both are set.
type Responder struct {
	CertificateFile string `yaml:"certificate_file"` // PEM, responder certificate first
	KeyFile         string `yaml:"key_file"`         // PEM, PKCS #8, SEC 1 or PKCS #1
}

// IsSet reports whether a responder certificate or key is configured.
func (r Responder) IsSet() bool {
	return r.CertificateFile != "" || r.KeyFile != ""
}

// Backend is one CA backend plugin.
type Backend struct {
	Name string `yaml:"name"`
	// Plugin is "builtin:<name>" or the absolute path of a plugin executable.
	Plugin string `yaml:"plugin"`
	// SHA256 is the hex SHA-256 digest of the plugin executable, in lowercase or
	// uppercase. It is empty for a built-in backend.
	SHA256 string   `yaml:"sha256"`
	Args   []string `yaml:"args"`
	// Config is passed to the plugin unchanged. It is nil when the file leaves it
	// out.
	Config         map[string]any `yaml:"config"`
	HealthInterval time.Duration  `yaml:"health_interval"`
}

// Builtin returns the name of the built-in backend that b selects, or false when b
// names a plugin executable.
func (b *Backend) Builtin() (name string, ok bool) {
	return strings.CutPrefix(b.Plugin, builtinPrefix)
}

// Profile is one certificate profile, served under /.well-known/cmp/p/<Name>.
type Profile struct {
	Name            string            `yaml:"name"`
	Backend         string            `yaml:"backend"`
	Validity        time.Duration     `yaml:"validity"`
	KeyTypes        []string          `yaml:"key_types"`
	ImplicitConfirm bool              `yaml:"implicit_confirm"`
	RequireSubject  bool              `yaml:"require_subject"`
	SAN             SAN               `yaml:"san"`
	MACSecrets      []MACSecretConfig `yaml:"mac_secrets"`
	// TrustedRAs are requester identities whose requests may carry raVerified:
	// "mac:<reference>" or a certificate subject as RFC 4514 text.
	TrustedRAs []string `yaml:"trusted_ras"`
	// CentralKeyGen lets clients have the gateway generate their key pair.
	CentralKeyGen CentralKeyGen `yaml:"central_keygen"`
}

// CentralKeyGen configures central key generation (RFC 9483 section 4.1.6) and the
// recovery of the archived keys with krr.
type CentralKeyGen struct {
	Enabled bool `yaml:"enabled"`
	// KeyType is generated when the request names no algorithm; it must be one of
	// the profile's key_types.
	KeyType     string `yaml:"key_type"`
	KeyRecovery bool   `yaml:"key_recovery"`
}

// SAN is the subject alternative name policy of a profile.
type SAN struct {
	AllowDNS   bool `yaml:"allow_dns"`
	AllowIP    bool `yaml:"allow_ip"`
	AllowEmail bool `yaml:"allow_email"`
	AllowURI   bool `yaml:"allow_uri"`
	// DNSSuffixes, when not empty, limits dNSName entries to these domains and
	// their subdomains.
	DNSSuffixes []string `yaml:"dns_suffixes"`
}

// MACSecretConfig names the file of one shared secret for MAC-protected requests.
// Profile.LoadMACSecrets reads it.
type MACSecretConfig struct {
	// Reference is the senderKID, as text, of the requests that use this secret.
	// An empty Reference matches requests without senderKID.
	Reference  string `yaml:"reference"`
	SecretFile string `yaml:"secret_file"`
	// Generate creates SecretFile with a random secret when it is missing.
	Generate bool `yaml:"generate"`

	// referenceMissing is set by Load when the file leaves reference out, which
	// Validate reports, because an empty Reference has a meaning of its own.
	referenceMissing bool
}

// SlogLevel returns the slog level for Level, or slog.LevelInfo for a value that
// Validate rejects.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// DefaultYAML returns a copy of the embedded default configuration file, with its
// comments.
func DefaultYAML() []byte {
	return bytes.Clone(defaultYAML)
}

// Default returns the default configuration, parsed from DefaultYAML. Relative
// paths are resolved against the current directory. When the current directory
// cannot be determined they stay relative, so the operating system resolves them
// against the current directory when they are used.
func Default() *Config {
	base, err := os.Getwd()
	if err != nil {
		base = ""
	}
	cfg, err := parse(defaultYAML, base, false)
	if err != nil {
		// TestDefaultIsValid parses the embedded file, so reaching this is a build
		// defect.
		panic(fmt.Sprintf("config: embedded default.yaml is invalid: %v", err))
	}
	return cfg
}

// Load reads the configuration file at path, applies the defaults to the keys it
// leaves out, resolves relative paths against the folder of the file and validates
// the result. An empty file gives the default configuration.
//
// The error lists every problem found, each with its key path, such as
// profiles[1].backend. Load does not read secret files, Profile.LoadMACSecrets
// does. It reads each scep.profiles[].next_ca_file and reports one that cannot be
// read or contains no CA certificate.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := parse(data, filepath.Dir(abs), true)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", abs, err)
	}
	return cfg, nil
}

// parse decodes data, resolves its paths against base and validates it. With
// withDefaults, the keys that data leaves out take their values from default.yaml.
func parse(data []byte, base string, withDefaults bool) (*Config, error) {
	cfg := &Config{}
	if withDefaults {
		if err := decodeStrict(defaultYAML, cfg); err != nil {
			return nil, fmt.Errorf("embedded default.yaml: %w", err)
		}
	}
	if err := decodeStrict(data, cfg); err != nil {
		return nil, err
	}

	if withDefaults {
		if err := applyItemDefaults(data, cfg); err != nil {
			return nil, err
		}
	}
	cfg.resolvePaths(base)

	if err := errors.Join(cfg.Validate(), cfg.checkSCEPFiles()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeStrict decodes one YAML document into cfg, keeping the values of the keys
// that data leaves out. Data without a document, such as an empty file, leaves cfg
// unchanged.
func decodeStrict(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return describeDecodeError(err)
	}

	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return fmt.Errorf("line %d: a second YAML document starts here; keep the whole configuration in one document", next.Line)
	}
	return nil
}

// sectionOfType maps the Go type named in a yaml.v3 error to the place of its keys
// in the file.
var sectionOfType = map[string]string{
	"config.Config":          "the top level",
	"config.Log":             "log",
	"config.Database":        "database",
	"config.HTTP":            "http",
	"config.TCP":             "tcp",
	"config.CMP":             "cmp",
	"config.Responder":       "cmp.responder",
	"config.Backend":         "a backends entry",
	"config.Profile":         "a profiles entry",
	"config.SAN":             "the san of a profile",
	"config.CentralKeyGen":   "the central_keygen of a profile",
	"config.MACSecretConfig": "a mac_secrets entry",
	"config.SCEP":            "scep",
	"config.SCEPProfile":     "a scep.profiles entry",
	"config.SCEPChallenge":   "the challenge of a scep.profiles entry",
}

var unknownFieldPattern = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)

// describeDecodeError rewrites the unknown-field messages of yaml.v3, which name Go
// types, into messages that name YAML keys.
func describeDecodeError(err error) error {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return err
	}
	problems := make([]error, 0, len(typeErr.Errors))
	for _, msg := range typeErr.Errors {
		m := unknownFieldPattern.FindStringSubmatch(msg)
		section, known := "", false
		if m != nil {
			section, known = sectionOfType[m[3]]
		}
		if !known {
			problems = append(problems, errors.New(msg+typeHint(msg)))
			continue
		}
		problems = append(problems, fmt.Errorf(
			"line %s: unknown key %q in %s; check the spelling against the output of \"certgate config default\"",
			m[1], m[2], section))
	}
	return errors.Join(problems...)
}

// typeHint returns advice for a YAML value of the wrong type, whose message from
// yaml.v3 names the Go type but not the expected YAML form.
func typeHint(msg string) string {
	switch {
	case strings.Contains(msg, "into time.Duration"):
		return "; write a duration with its unit, such as 30s, 10m or 8760h"
	case strings.Contains(msg, "into []string"):
		return `; write a list, such as ["127.0.0.1:8080"]`
	case strings.Contains(msg, "into int") || strings.Contains(msg, "into uint"):
		return "; write a whole number"
	case strings.Contains(msg, "into bool"):
		return "; write true or false"
	}
	return ""
}

// resolvePaths makes every relative path absolute: secret files against DataDir,
// the others against base. With an empty base, the paths other than secret files
// stay relative, and relative secret files are joined to the relative DataDir.
func (c *Config) resolvePaths(base string) {
	resolve := func(p *string, dir string) {
		if *p != "" && dir != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}

	resolve(&c.DataDir, base)
	resolve(&c.CMP.Responder.CertificateFile, base)
	resolve(&c.CMP.Responder.KeyFile, base)
	for i := range c.CMP.TrustedRootsFiles {
		resolve(&c.CMP.TrustedRootsFiles[i], base)
	}
	for i := range c.CMP.IntermediateFiles {
		resolve(&c.CMP.IntermediateFiles[i], base)
	}
	for i := range c.Backends {
		if _, builtin := c.Backends[i].Builtin(); !builtin {
			resolve(&c.Backends[i].Plugin, base)
		}
	}
	for i := range c.Profiles {
		for j := range c.Profiles[i].MACSecrets {
			resolve(&c.Profiles[i].MACSecrets[j].SecretFile, c.DataDir)
		}
	}
	for i := range c.SCEP.Profiles {
		resolve(&c.SCEP.Profiles[i].Challenge.SecretFile, c.DataDir)
		resolve(&c.SCEP.Profiles[i].NextCAFile, base)
	}
}
