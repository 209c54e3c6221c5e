package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultServesSCEP(t *testing.T) {
	cfg := Default()
	s := cfg.SCEP
	if !s.Enabled || s.PathPrefix != "/scep" || s.DefaultProfile != "default" || len(s.Profiles) != 1 {
		t.Fatalf("scep defaults = %+v, want enabled at /scep with one profile", s)
	}
	p := s.Profiles[0]
	want := filepath.Join(cfg.DataDir, "secrets", "scep-default.challenge")
	if p.Profile != "" || p.Challenge.SecretFile != want || !p.Challenge.Generate || len(p.LegacyAlgorithms) != 0 {
		t.Errorf("scep.profiles[0] = %+v, want the CMP default profile and a generated challenge in %s", p, want)
	}
	if p.NextCAFile != "" {
		t.Errorf("scep.profiles[0].next_ca_file = %q, want none", p.NextCAFile)
	}
}

func TestValidateSCEP(t *testing.T) {
	cases := []struct {
		name   string
		change func(*SCEP)
		keys   []string
	}{
		{"prefix without slash", func(s *SCEP) { s.PathPrefix = "scep" }, []string{"scep.path_prefix"}},
		{"prefix with trailing slash", func(s *SCEP) { s.PathPrefix = "/scep/" }, []string{"scep.path_prefix"}},
		{"prefix of CMP", func(s *SCEP) { s.PathPrefix = "/.well-known/cmp/scep" }, []string{"scep.path_prefix"}},
		{"prefix of CRLs", func(s *SCEP) { s.PathPrefix = "/crl" }, []string{"scep.path_prefix"}},
		{"no profiles", func(s *SCEP) { s.Profiles = nil }, []string{"scep.profiles"}},
		{"unknown default", func(s *SCEP) { s.DefaultProfile = "other" }, []string{"scep.default_profile"}},
		{"empty name", func(s *SCEP) { s.Profiles[0].Name = "" }, []string{"scep.profiles[0].name", "scep.default_profile"}},
		{"duplicate name", func(s *SCEP) { s.Profiles = append(s.Profiles, s.Profiles[0]) }, []string{"scep.profiles[1].name"}},
		{"unknown CMP profile", func(s *SCEP) { s.Profiles[0].Profile = "nope" }, []string{"scep.profiles[0].profile"}},
		{"generate without file", func(s *SCEP) { s.Profiles[0].Challenge.SecretFile = "" }, []string{"scep.profiles[0].challenge.secret_file"}},
		{"unknown legacy algorithm", func(s *SCEP) { s.Profiles[0].LegacyAlgorithms = []string{"rc2"} }, []string{"scep.profiles[0].legacy_algorithms[0]"}},
		{"repeated legacy algorithm", func(s *SCEP) { s.Profiles[0].LegacyAlgorithms = []string{"des", "des"} }, []string{"scep.profiles[0].legacy_algorithms[1]"}},
		{"disabled is not checked", func(s *SCEP) { s.Enabled = false; s.PathPrefix = "bad" }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			c.change(&cfg.SCEP)
			if got := fieldErrorKeys(cfg.Validate()); !reflect.DeepEqual(got, c.keys) {
				t.Errorf("problem keys = %v, want %v", got, c.keys)
			}
		})
	}
}

func TestLoadSCEPSection(t *testing.T) {
	cfg := mustLoad(t, `
scep:
  path_prefix: /enroll
  default_profile: legacy
  profiles:
    - name: legacy
      profile: default
      challenge: {secret_file: secrets/legacy.challenge}
      legacy_algorithms: [des, sha1]
`)
	p := cfg.SCEP.Profiles[0]
	if cfg.SCEP.PathPrefix != "/enroll" || !cfg.SCEP.Enabled || !p.HasLegacyAlgorithm("des") || p.HasLegacyAlgorithm("md5") {
		t.Errorf("scep = %+v", cfg.SCEP)
	}
	if want := filepath.Join(cfg.DataDir, "secrets", "legacy.challenge"); p.Challenge.SecretFile != want {
		t.Errorf("challenge file = %s, want %s", p.Challenge.SecretFile, want)
	}
}

func TestLoadChallengeGenerates(t *testing.T) {
	skipOnWindows(t)
	path := filepath.Join(t.TempDir(), "secrets", "scep.challenge")
	p := &SCEPProfile{Name: "default", Challenge: SCEPChallenge{SecretFile: path, Generate: true}}
	first, err := p.LoadChallenge()
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 32 {
		t.Errorf("generated challenge has %d characters, want 32", len(first))
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("challenge file mode = %04o, want 0600", info.Mode().Perm())
	}
	again, err := p.LoadChallenge()
	if err != nil || string(again) != string(first) {
		t.Errorf("second load = %q, %v; want the same challenge", again, err)
	}
}

func TestLoadChallengeNone(t *testing.T) {
	p := &SCEPProfile{Name: "renewal-only"}
	secret, err := p.LoadChallenge()
	if secret != nil || err != nil {
		t.Errorf("LoadChallenge without a file = %q, %v; want nil, nil", secret, err)
	}
}

// testCertificate returns a self-signed certificate in DER with the given keyUsage,
// and with basicConstraints cA set when isCA is true.
func testCertificate(t *testing.T, cn string, isCA bool, usage x509.KeyUsage, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		IsCA: isCA, BasicConstraintsValid: isCA, KeyUsage: usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemBlock(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}

// loadWithNextCA loads a configuration whose one SCEP profile names next-ca.pem, a
// relative path, after writing content to that file when content is not nil.
func loadWithNextCA(t *testing.T, content []byte) (*Config, string, error) {
	t.Helper()
	dir := t.TempDir()
	nextFile := filepath.Join(dir, "next-ca.pem")
	if content != nil {
		if err := os.WriteFile(nextFile, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	configFile := filepath.Join(dir, "certgate.yaml")
	yamlText := "scep:\n  profiles:\n    - name: default\n      next_ca_file: next-ca.pem\n"
	if err := os.WriteFile(configFile, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(configFile)
	return cfg, nextFile, err
}

func TestLoadNextCAFile(t *testing.T) {
	usage := x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	issuing := testCertificate(t, "Next Issuing CA", true, usage, time.Now().Add(24*time.Hour))
	root := testCertificate(t, "Next Root CA", true, usage, time.Now().Add(48*time.Hour))
	// Text around the blocks, as "openssl x509 -text" writes it, is allowed.
	content := append([]byte("subject=CN = Next Issuing CA\n"), pemBlock("CERTIFICATE", issuing)...)
	content = append(content, pemBlock("CERTIFICATE", root)...)

	cfg, nextFile, err := loadWithNextCA(t, content)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	p := cfg.SCEP.Profiles[0]
	if p.NextCAFile != nextFile {
		t.Errorf("next_ca_file = %s, want %s, resolved against the folder of the configuration file", p.NextCAFile, nextFile)
	}
	certs, err := p.LoadNextCA()
	if err != nil {
		t.Fatalf("LoadNextCA: %v", err)
	}
	if len(certs) != 2 {
		t.Fatalf("LoadNextCA returned %d certificates, want 2", len(certs))
	}
	if certs[0].Subject.CommonName != "Next Issuing CA" || certs[1].Subject.CommonName != "Next Root CA" {
		t.Errorf("certificates %s, %s; want the issuing CA, then the root, in file order", certs[0].Subject, certs[1].Subject)
	}
}

func TestLoadNextCANone(t *testing.T) {
	p := &SCEPProfile{Name: "default"}
	certs, err := p.LoadNextCA()
	if certs != nil || err != nil {
		t.Errorf("LoadNextCA without a file = %v, %v; want nil, nil", certs, err)
	}
}

func TestLoadNextCAFileErrors(t *testing.T) {
	usage := x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	valid := pemBlock("CERTIFICATE", testCertificate(t, "Next CA", true, usage, time.Now().Add(24*time.Hour)))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		content []byte // nil: the file is missing
		problem string
	}{
		{"missing file", nil, "cannot be read"},
		{"empty file", []byte{}, "contains no PEM certificate"},
		{"text only", []byte("not a certificate\n"), "contains no PEM certificate"},
		{"DER", testCertificate(t, "Next CA", true, usage, time.Now().Add(24*time.Hour)), "is a DER certificate"},
		{"private key", append(slices.Clone(valid), pemBlock("PRIVATE KEY", keyDER)...), "contains a private key"},
		{"other block", pemBlock("CERTIFICATE REQUEST", []byte{0x30, 0x00}), `"CERTIFICATE REQUEST" PEM block`},
		{"invalid certificate", pemBlock("CERTIFICATE", []byte{0x30, 0x03, 0x02, 0x01, 0x01}), "certificate 1 is invalid"},
		{"leaf certificate", pemBlock("CERTIFICATE", testCertificate(t, "device", false, x509.KeyUsageDigitalSignature, time.Now().Add(24*time.Hour))), "certificate 1 (CN=device) is not a CA certificate"},
		{"chain with a leaf", append(slices.Clone(valid), pemBlock("CERTIFICATE", testCertificate(t, "device", false, 0, time.Now().Add(24*time.Hour)))...), "certificate 2 (CN=device) is not a CA certificate"},
		{"no keyCertSign", pemBlock("CERTIFICATE", testCertificate(t, "Signing Only", true, x509.KeyUsageDigitalSignature, time.Now().Add(24*time.Hour))), "lacks keyCertSign"},
		{"broken PEM block", append(slices.Clone(valid), "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"...), "PEM block 2 cannot be decoded"},
		{"broken first PEM block", []byte("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"), "PEM block 1 cannot be decoded"},
		{"expired", pemBlock("CERTIFICATE", testCertificate(t, "Old CA", true, usage, time.Now().Add(-time.Hour))), "expired on"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := loadWithNextCA(t, c.content)
			if got, want := fieldErrorKeys(err), []string{"scep.profiles[0].next_ca_file"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("problem keys = %v, want %v (error: %v)", got, want, err)
			}
			if !strings.Contains(err.Error(), c.problem) {
				t.Errorf("error %q does not contain %q", err, c.problem)
			}
		})
	}
}

func TestLoadNextCAErrorNamesProfile(t *testing.T) {
	p := &SCEPProfile{Name: "rollover", NextCAFile: filepath.Join(t.TempDir(), "missing.pem")}
	_, err := p.LoadNextCA()
	if err == nil || !strings.Contains(err.Error(), `scep profile "rollover", next_ca_file`) {
		t.Errorf("LoadNextCA of a missing file: %v, want an error naming the profile and next_ca_file", err)
	}
}

func TestNextCAFileNotReadWhenSCEPIsOff(t *testing.T) {
	dir := t.TempDir()
	configFile := filepath.Join(dir, "certgate.yaml")
	yamlText := "scep:\n  enabled: false\n  profiles:\n    - name: default\n      next_ca_file: missing.pem\n"
	if err := os.WriteFile(configFile, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(configFile); err != nil {
		t.Errorf("Load with scep off and a missing next_ca_file: %v", err)
	}
}
