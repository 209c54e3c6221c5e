package config

import (
	"errors"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
)

// applyItemDefaults fills the keys that the backends and profiles entries of data
// leave out. A backend takes health_interval from the first backend of
// default.yaml. A profile takes validity, key_types, implicit_confirm,
// require_subject and each san key from the first profile of default.yaml. Other
// keys left out keep their zero value, and a mac_secrets entry without reference
// is marked for Validate to report.
func applyItemDefaults(data []byte, cfg *Config) error {
	// Decoding into maps shows which keys an entry sets. yaml.v3 applies merge keys
	// (<<) to maps as it does to structs, so a key set through a merge counts as
	// set. A key set to null counts as left out.
	var present struct {
		Backends []map[string]any `yaml:"backends"`
		Profiles []map[string]any `yaml:"profiles"`
	}
	if err := yaml.Unmarshal(data, &present); err != nil {
		return err
	}

	defaults := &Config{}
	if err := decodeStrict(defaultYAML, defaults); err != nil {
		return fmt.Errorf("embedded default.yaml: %w", err)
	}
	if len(defaults.Backends) == 0 || len(defaults.Profiles) == 0 {
		return errors.New("embedded default.yaml: a backend and a profile are needed as templates for defaults")
	}

	// The entries of data replaced the default lists only where data sets the list,
	// and then they line up one to one with the decoded entries.
	if present.Backends != nil && len(present.Backends) == len(cfg.Backends) {
		for i, keys := range present.Backends {
			applyBackendDefaults(&cfg.Backends[i], keys, &defaults.Backends[0])
		}
	}

	if present.Profiles != nil && len(present.Profiles) == len(cfg.Profiles) {
		for i, keys := range present.Profiles {
			applyProfileDefaults(&cfg.Profiles[i], keys, &defaults.Profiles[0])
			markMissingReferences(&cfg.Profiles[i], keys)
		}
	}
	return nil
}

func applyBackendDefaults(b *Backend, keys map[string]any, def *Backend) {
	if !isSet(keys, "health_interval") {
		b.HealthInterval = def.HealthInterval
	}
}

func applyProfileDefaults(p *Profile, keys map[string]any, def *Profile) {
	if !isSet(keys, "validity") {
		p.Validity = def.Validity
	}
	if !isSet(keys, "key_types") {
		p.KeyTypes = slices.Clone(def.KeyTypes)
	}
	if !isSet(keys, "implicit_confirm") {
		p.ImplicitConfirm = def.ImplicitConfirm
	}
	if !isSet(keys, "require_subject") {
		p.RequireSubject = def.RequireSubject
	}

	sanKeys, _ := keys["san"].(map[string]any) // nil when san is left out
	if !isSet(sanKeys, "allow_dns") {
		p.SAN.AllowDNS = def.SAN.AllowDNS
	}
	if !isSet(sanKeys, "allow_ip") {
		p.SAN.AllowIP = def.SAN.AllowIP
	}
	if !isSet(sanKeys, "allow_email") {
		p.SAN.AllowEmail = def.SAN.AllowEmail
	}
	if !isSet(sanKeys, "allow_uri") {
		p.SAN.AllowURI = def.SAN.AllowURI
	}
	if !isSet(sanKeys, "dns_suffixes") {
		p.SAN.DNSSuffixes = slices.Clone(def.SAN.DNSSuffixes)
	}
}

// markMissingReferences marks each mac_secrets entry of p that leaves out
// reference. keys are the keys set in the file for p.
func markMissingReferences(p *Profile, keys map[string]any) {
	entries, _ := keys["mac_secrets"].([]any)
	if len(entries) != len(p.MACSecrets) {
		return
	}
	for j, entry := range entries {
		entryKeys, _ := entry.(map[string]any)
		p.MACSecrets[j].referenceMissing = !isSet(entryKeys, "reference")
	}
}

// isSet reports whether keys contains key with a value other than null.
func isSet(keys map[string]any, key string) bool {
	v, ok := keys[key]
	return ok && v != nil
}
