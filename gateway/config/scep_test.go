package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
