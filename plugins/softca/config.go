package softca

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/plugins/sdk"
)

// Config is the validated form of the plugin's `config` block.
type Config struct {
	KeyAlgorithm      string        // key_algorithm, for a generated CA
	RootCommonName    string        // root_common_name, for a generated CA
	IssuingCommonName string        // issuing_common_name, for a generated CA
	RootValidity      time.Duration // root_validity, for a generated CA
	IssuingValidity   time.Duration // issuing_validity, for a generated CA
	CRLValidity       time.Duration // crl_validity: time from thisUpdate to nextUpdate

	// Import of an existing CA. Paths are absolute after parsing; relative ones in the
	// configuration resolve against the data directory.
	CACertificateFile string // ca_certificate_file
	CAKeyFile         string // ca_key_file
	CAChainFile       string // ca_chain_file, optional
}

// Defaults of a generated CA. Go durations have no day unit, so years are 365 days.
const (
	defaultKeyAlgorithm      = "ecdsa-p256"
	defaultRootCommonName    = "certgate Root CA"
	defaultIssuingCommonName = "certgate Issuing CA"
	defaultRootValidity      = 10 * 365 * 24 * time.Hour
	defaultIssuingValidity   = 5 * 365 * 24 * time.Hour
	defaultCRLValidity       = 7 * 24 * time.Hour
)

// configKey is one accepted key of the `config` block.
type configKey struct {
	name       string
	generation bool // only meaningful for a generated CA, so rejected on import
	set        func(c *Config, value string) error
}

var configKeys = []configKey{
	{"key_algorithm", true, func(c *Config, v string) error {
		if _, ok := keyGenerators[v]; !ok {
			return fmt.Errorf("%q is not supported; use one of %s", v, strings.Join(keyAlgorithmNames(), ", "))
		}
		c.KeyAlgorithm = v
		return nil
	}},
	{"root_common_name", true, func(c *Config, v string) error { return setCommonName(&c.RootCommonName, v) }},
	{"issuing_common_name", true, func(c *Config, v string) error { return setCommonName(&c.IssuingCommonName, v) }},
	{"root_validity", true, func(c *Config, v string) error { return setDuration(&c.RootValidity, v) }},
	{"issuing_validity", true, func(c *Config, v string) error { return setDuration(&c.IssuingValidity, v) }},
	{"crl_validity", false, func(c *Config, v string) error { return setDuration(&c.CRLValidity, v) }},
	{"ca_certificate_file", false, func(c *Config, v string) error { return setPath(&c.CACertificateFile, v) }},
	{"ca_key_file", false, func(c *Config, v string) error { return setPath(&c.CAKeyFile, v) }},
	{"ca_chain_file", false, func(c *Config, v string) error { return setPath(&c.CAChainFile, v) }},
}

func configKeyNames() []string {
	names := make([]string, len(configKeys))
	for i, k := range configKeys {
		names[i] = k.name
	}
	return names
}

// ParseConfig validates the plugin's `config` block and fills in defaults. Every
// error is an *sdk.Error of CategoryBadRequest that names the key.
func ParseConfig(dataDir string, raw map[string]any) (*Config, error) {
	c := &Config{
		KeyAlgorithm:      defaultKeyAlgorithm,
		RootCommonName:    defaultRootCommonName,
		IssuingCommonName: defaultIssuingCommonName,
		RootValidity:      defaultRootValidity,
		IssuingValidity:   defaultIssuingValidity,
		CRLValidity:       defaultCRLValidity,
	}

	// Walk the keys in a fixed order so that the first error is the same every time.
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	slices.Sort(names)

	var generationKeys []string
	for _, name := range names {
		idx := slices.IndexFunc(configKeys, func(k configKey) bool { return k.name == name })
		if idx < 0 {
			return nil, sdk.Errorf(sdk.CategoryBadRequest, "softca: unknown config key %q; valid keys are %s",
				name, strings.Join(configKeyNames(), ", "))
		}
		value, ok := raw[name].(string)
		if !ok {
			return nil, sdk.Errorf(sdk.CategoryBadRequest, "softca: config key %s must be a string, not %T", name, raw[name])
		}
		if err := configKeys[idx].set(c, value); err != nil {
			return nil, sdk.Errorf(sdk.CategoryBadRequest, "softca: config key %s: %v", name, err)
		}
		if configKeys[idx].generation {
			generationKeys = append(generationKeys, name)
		}
	}

	if err := c.check(generationKeys); err != nil {
		return nil, err
	}
	c.resolvePaths(dataDir)
	return c, nil
}

// check validates combinations of keys.
func (c *Config) check(generationKeys []string) error {
	switch {
	case c.CACertificateFile != "" && c.CAKeyFile == "":
		return sdk.Errorf(sdk.CategoryBadRequest, "softca: ca_certificate_file is set but ca_key_file is missing")
	case c.CAKeyFile != "" && c.CACertificateFile == "":
		return sdk.Errorf(sdk.CategoryBadRequest, "softca: ca_key_file is set but ca_certificate_file is missing")
	case c.CAChainFile != "" && c.CACertificateFile == "":
		return sdk.Errorf(sdk.CategoryBadRequest, "softca: ca_chain_file is set but ca_certificate_file is missing")
	case c.CACertificateFile != "" && len(generationKeys) > 0:
		return sdk.Errorf(sdk.CategoryBadRequest, "softca: %s applies only to a generated CA and cannot be combined with ca_certificate_file",
			strings.Join(generationKeys, ", "))
	case c.CACertificateFile == "" && c.IssuingValidity > c.RootValidity:
		return sdk.Errorf(sdk.CategoryBadRequest, "softca: issuing_validity (%s) exceeds root_validity (%s)", c.IssuingValidity, c.RootValidity)
	}
	return nil
}

func (c *Config) resolvePaths(dataDir string) {
	for _, p := range []*string{&c.CACertificateFile, &c.CAKeyFile, &c.CAChainFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dataDir, *p)
		}
	}
}

func setCommonName(dst *string, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("the common name is empty")
	}
	// RFC 5280 appendix A.1 bounds commonName (ub-common-name) at 64 characters.
	if len([]rune(v)) > 64 {
		return fmt.Errorf("the common name has more than 64 characters")
	}
	*dst = v
	return nil
}

func setDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a Go duration such as \"43800h\"", v)
	}
	if d <= 0 {
		return fmt.Errorf("%q is not positive", v)
	}
	*dst = d
	return nil
}

func setPath(dst *string, v string) error {
	if v == "" {
		return fmt.Errorf("the path is empty")
	}
	*dst = v
	return nil
}
