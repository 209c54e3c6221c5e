package main

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certgate/certgate/backends/upstreamcmp"
	"github.com/certgate/certgate/gateway/cmp"
)

// upstreamKeys lists the settings of the built-in upstream-cmp backend.
var upstreamKeys = []string{
	"server", "reference", "secret_file", "certificate_file", "key_file", "trusted_roots_file",
	"recipient", "ca_chain_file", "request_type", "implicit_confirm", "timeout",
}

// parseUpstreamConfig reads the config block of an upstream-cmp backend. Relative paths
// resolve against dataDir, the backend's data folder.
func parseUpstreamConfig(dataDir string, raw map[string]any) (*upstreamcmp.Config, error) {
	keys := make([]string, 0, len(raw))
	for key := range raw {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	text := map[string]string{}
	for _, key := range keys {
		if !slices.Contains(upstreamKeys, key) {
			return nil, fmt.Errorf("unknown key %q; valid keys are %s", key, strings.Join(upstreamKeys, ", "))
		}
		text[key] = fmt.Sprint(raw[key])
	}
	path := func(key string) string {
		value := text[key]
		if value == "" || filepath.IsAbs(value) {
			return value
		}
		return filepath.Join(dataDir, value)
	}

	cfg := &upstreamcmp.Config{Server: text["server"], Reference: text["reference"], ImplicitConfirm: text["implicit_confirm"] == "true"}
	if cfg.Server == "" {
		return nil, fmt.Errorf("server is missing; set the upstream CA's URL, such as http://ca.example:8080/.well-known/cmp or tcp://ca.example:829")
	}
	switch text["request_type"] {
	case "", "cr":
		cfg.RequestType = cmp.BodyCR
	case "ir":
		cfg.RequestType = cmp.BodyIR
	default:
		return nil, fmt.Errorf("request_type %q is invalid; use ir or cr", text["request_type"])
	}
	if value := text["timeout"]; value != "" {
		timeout, err := time.ParseDuration(value)
		if err != nil || timeout <= 0 {
			return nil, fmt.Errorf("timeout %q is not a positive duration such as 60s", value)
		}
		cfg.Timeout = timeout
	}

	switch {
	case text["secret_file"] != "":
		data, err := os.ReadFile(path("secret_file"))
		if err != nil {
			return nil, fmt.Errorf("secret_file: %w", err)
		}
		secret, _, _ := strings.Cut(string(data), "\n")
		if secret == "" {
			return nil, fmt.Errorf("secret_file %s: the first line is empty", path("secret_file"))
		}
		cfg.Secret = []byte(secret)
	case text["certificate_file"] != "" && text["key_file"] != "":
		credential, err := readResponder(path("certificate_file"), path("key_file"))
		if err != nil {
			return nil, fmt.Errorf("certificate_file and key_file: %w", err)
		}
		cfg.Signer, cfg.Certificate, cfg.Chain = credential.Signer, credential.Certificate, credential.Chain
	default:
		return nil, fmt.Errorf("no RA credential: set secret_file (with reference), or certificate_file and key_file")
	}
	if file := path("trusted_roots_file"); file != "" {
		cfg.TrustedRoots = x509.NewCertPool()
		if err := addPEMFile(cfg.TrustedRoots, file); err != nil {
			return nil, fmt.Errorf("trusted_roots_file: %w", err)
		}
	}
	if file := path("ca_chain_file"); file != "" {
		credential, err := readCertificates(file)
		if err != nil {
			return nil, fmt.Errorf("ca_chain_file: %w", err)
		}
		cfg.CAChain = credential
	}
	if value := text["recipient"]; value != "" {
		name, err := parseSubject(value)
		if err != nil {
			return nil, fmt.Errorf("recipient: %w", err)
		}
		if cfg.Recipient, err = asn1.Marshal(name.ToRDNSequence()); err != nil {
			return nil, fmt.Errorf("recipient: %w", err)
		}
	}
	return cfg, nil
}

// readCertificates reads every certificate of a PEM file, in order.
func readCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return certs, nil
}
