package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// writeConfig writes content to certgate.yaml in a new temporary directory and
// returns the file's path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "certgate.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, content string) *Config {
	t.Helper()
	cfg, err := Load(writeConfig(t, content))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestDefaultValues(t *testing.T) {
	cfg := Default()

	if got, want := cfg.HTTP.Listen, []string{"127.0.0.1:8080"}; !reflect.DeepEqual(got, want) {
		t.Errorf("HTTP.Listen = %q, want %q", got, want)
	}
	if got := cfg.HTTP.MaxRequestBytes; got != 262144 {
		t.Errorf("HTTP.MaxRequestBytes = %d, want 262144", got)
	}
	if got := cfg.HTTP.ReadTimeout; got != 30*time.Second {
		t.Errorf("HTTP.ReadTimeout = %v, want 30s", got)
	}
	if got := cfg.HTTP.IdleTimeout; got != 120*time.Second {
		t.Errorf("HTTP.IdleTimeout = %v, want 120s", got)
	}
	if got := cfg.Log.SlogLevel().String(); got != "INFO" {
		t.Errorf("Log.SlogLevel() = %s, want INFO", got)
	}
	if got := cfg.CMP.MessageTimeTolerance; got != 10*time.Minute {
		t.Errorf("CMP.MessageTimeTolerance = %v, want 10m", got)
	}
	if got := cfg.CMP.TransactionTimeout; got != 15*time.Minute {
		t.Errorf("CMP.TransactionTimeout = %v, want 15m", got)
	}
	if cfg.CMP.Responder.IsSet() {
		t.Errorf("CMP.Responder = %+v, want unset", cfg.CMP.Responder)
	}

	if len(cfg.Backends) != 1 {
		t.Fatalf("len(Backends) = %d, want 1", len(cfg.Backends))
	}
	b := cfg.Backends[0]
	if name, ok := b.Builtin(); !ok || name != "softca" {
		t.Errorf("Backends[0].Builtin() = %q, %v, want softca, true", name, ok)
	}
	if b.HealthInterval != 10*time.Second {
		t.Errorf("Backends[0].HealthInterval = %v, want 10s", b.HealthInterval)
	}

	if len(cfg.Profiles) != 1 {
		t.Fatalf("len(Profiles) = %d, want 1", len(cfg.Profiles))
	}
	p := cfg.Profiles[0]
	if p.Validity != 8760*time.Hour {
		t.Errorf("Profiles[0].Validity = %v, want 8760h", p.Validity)
	}
	if !reflect.DeepEqual(p.KeyTypes, knownKeyTypes) {
		t.Errorf("Profiles[0].KeyTypes = %q, want every known type %q", p.KeyTypes, knownKeyTypes)
	}
	if !p.ImplicitConfirm || !p.RequireSubject {
		t.Errorf("Profiles[0] ImplicitConfirm = %v, RequireSubject = %v, want both true", p.ImplicitConfirm, p.RequireSubject)
	}
	if want := (SAN{AllowDNS: true, AllowIP: true, AllowEmail: true, AllowURI: true, DNSSuffixes: []string{}}); !reflect.DeepEqual(p.SAN, want) {
		t.Errorf("Profiles[0].SAN = %+v, want %+v", p.SAN, want)
	}
	if len(p.MACSecrets) != 1 {
		t.Fatalf("len(Profiles[0].MACSecrets) = %d, want 1", len(p.MACSecrets))
	}
	if s := p.MACSecrets[0]; s.Reference != "default" || !s.Generate {
		t.Errorf("Profiles[0].MACSecrets[0] = %+v, want reference default with generate", s)
	}
}

func TestDefaultResolvesAgainstWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	cfg := Default()
	if want := filepath.Join(dir, "certgate-data"); cfg.DataDir != want {
		t.Errorf("DataDir = %q, want %q", cfg.DataDir, want)
	}
	if want := filepath.Join(dir, "certgate-data", "secrets", "cmp-default.secret"); cfg.Profiles[0].MACSecrets[0].SecretFile != want {
		t.Errorf("SecretFile = %q, want %q", cfg.Profiles[0].MACSecrets[0].SecretFile, want)
	}
}

func TestDefaultYAMLRoundTrip(t *testing.T) {
	path := writeConfig(t, string(DefaultYAML()))
	t.Chdir(filepath.Dir(path)) // Default resolves against the working directory

	loaded, err := Load(path)
	if err != nil {
		t.Fatalf("Load of default.yaml: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(loaded, want) {
		t.Errorf("Load(default.yaml) = %+v\nwant Default() = %+v", loaded, want)
	}
}

func TestLoadEmptyFileGivesDefaults(t *testing.T) {
	for name, content := range map[string]string{
		"empty":         "",
		"comments only": "# nothing set here\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, content)
			t.Chdir(filepath.Dir(path))

			loaded, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if want := Default(); !reflect.DeepEqual(loaded, want) {
				t.Errorf("Load = %+v\nwant Default() = %+v", loaded, want)
			}
		})
	}
}

func TestDefaultYAMLReturnsCopy(t *testing.T) {
	first := DefaultYAML()
	first[0] = 'X'
	if second := DefaultYAML(); second[0] == 'X' {
		t.Error("DefaultYAML returned the embedded slice, and a caller changed it")
	}
}

// TestDefaultYAMLCommentsEveryKey checks that each key of default.yaml has a comment
// on its own line above it or at the end of its line.
func TestDefaultYAMLCommentsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(defaultYAML, &doc); err != nil {
		t.Fatal(err)
	}

	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path+"[]")
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, value := n.Content[i], n.Content[i+1]
				keyPath := strings.TrimPrefix(path+"."+key.Value, "[].")
				// yaml.v3 attaches the comment above "- name:" to the list entry.
				entryComment := i == 0 && strings.HasSuffix(path, "[]") && n.HeadComment != ""
				if key.HeadComment == "" && key.LineComment == "" && !entryComment {
					t.Errorf("line %d: key %s has no comment", key.Line, keyPath)
				}
				walk(value, keyPath)
			}
		}
	}
	walk(&doc, "")
}

func TestLoadPartialSection(t *testing.T) {
	cfg := mustLoad(t, "log:\n  level: debug\nhttp:\n  listen: [':0']\n")

	if cfg.Log.Level != "debug" {
		t.Errorf("Log.Level = %q, want debug", cfg.Log.Level)
	}
	if cfg.Log.Format != "text" {
		t.Errorf("Log.Format = %q, want the default text", cfg.Log.Format)
	}
	if got, want := cfg.HTTP.Listen, []string{":0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("HTTP.Listen = %q, want %q", got, want)
	}
	if cfg.HTTP.ReadTimeout != 30*time.Second {
		t.Errorf("HTTP.ReadTimeout = %v, want the default 30s", cfg.HTTP.ReadTimeout)
	}
	if len(cfg.Profiles) != 1 || cfg.Profiles[0].Name != "default" {
		t.Errorf("Profiles = %+v, want the default profile", cfg.Profiles)
	}
}

func TestLoadEntryDefaults(t *testing.T) {
	cfg := mustLoad(t, `
backends:
  - name: external
    plugin: /opt/certgate/plugins/ca
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
cmp:
  default_profile: minimal
profiles:
  - name: minimal
    backend: external
`)
	def := Default()

	b := cfg.Backends[0]
	if b.HealthInterval != def.Backends[0].HealthInterval {
		t.Errorf("HealthInterval = %v, want the default %v", b.HealthInterval, def.Backends[0].HealthInterval)
	}
	if b.Args != nil || b.Config != nil {
		t.Errorf("Args = %q, Config = %v, want both nil", b.Args, b.Config)
	}

	p, dp := cfg.Profiles[0], def.Profiles[0]
	if p.Validity != dp.Validity {
		t.Errorf("Validity = %v, want the default %v", p.Validity, dp.Validity)
	}
	if !reflect.DeepEqual(p.KeyTypes, dp.KeyTypes) {
		t.Errorf("KeyTypes = %q, want the default %q", p.KeyTypes, dp.KeyTypes)
	}
	if p.ImplicitConfirm != dp.ImplicitConfirm {
		t.Errorf("ImplicitConfirm = %v, want the default %v", p.ImplicitConfirm, dp.ImplicitConfirm)
	}
	if p.RequireSubject != dp.RequireSubject {
		t.Errorf("RequireSubject = %v, want the default %v", p.RequireSubject, dp.RequireSubject)
	}
	if !reflect.DeepEqual(p.SAN, dp.SAN) {
		t.Errorf("SAN = %+v, want the default %+v", p.SAN, dp.SAN)
	}
	if len(p.MACSecrets) != 0 {
		t.Errorf("MACSecrets = %+v, want none", p.MACSecrets)
	}
}

func TestLoadEntryExplicitFalseKept(t *testing.T) {
	cfg := mustLoad(t, `
profiles:
  - name: default
    backend: softca
    implicit_confirm: false
    require_subject: false
    san:
      allow_ip: false
`)
	p := cfg.Profiles[0]
	if p.ImplicitConfirm {
		t.Error("ImplicitConfirm = true, want the configured false")
	}
	if p.RequireSubject {
		t.Error("RequireSubject = true, want the configured false")
	}
	if p.SAN.AllowIP {
		t.Error("SAN.AllowIP = true, want the configured false")
	}
	if !p.SAN.AllowDNS || !p.SAN.AllowEmail || !p.SAN.AllowURI {
		t.Errorf("SAN = %+v, want the keys left out to be true", p.SAN)
	}
}

func TestLoadMergeKeyCountsAsSet(t *testing.T) {
	cfg := mustLoad(t, `
profiles:
  - &base
    name: default
    backend: softca
    implicit_confirm: false
    validity: 24h
  - <<: *base
    name: devices
`)
	p := cfg.Profiles[1]
	if p.Name != "devices" {
		t.Fatalf("Profiles[1].Name = %q, want devices", p.Name)
	}
	if p.ImplicitConfirm {
		t.Error("Profiles[1].ImplicitConfirm = true, want false from the merged profile")
	}
	if p.Validity != 24*time.Hour {
		t.Errorf("Profiles[1].Validity = %v, want 24h from the merged profile", p.Validity)
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	path := writeConfig(t, `
data_dir: state
cmp:
  responder:
    certificate_file: pki/responder.pem
    key_file: /etc/certgate/responder.key
  trusted_roots_files: [pki/roots.pem]
  intermediate_files: [pki/intermediates.pem]
backends:
  - name: softca
    plugin: builtin:softca
  - name: external
    plugin: plugins/external-ca
    sha256: 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF
profiles:
  - name: default
    backend: softca
    mac_secrets:
      - reference: relative
        secret_file: secrets/a.secret
      - reference: absolute
        secret_file: /run/secrets/b.secret
`)
	dir := filepath.Dir(path)
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	checks := []struct{ key, got, want string }{
		{"data_dir", cfg.DataDir, filepath.Join(dir, "state")},
		{"cmp.responder.certificate_file", cfg.CMP.Responder.CertificateFile, filepath.Join(dir, "pki", "responder.pem")},
		{"cmp.responder.key_file", cfg.CMP.Responder.KeyFile, "/etc/certgate/responder.key"},
		{"cmp.trusted_roots_files[0]", cfg.CMP.TrustedRootsFiles[0], filepath.Join(dir, "pki", "roots.pem")},
		{"cmp.intermediate_files[0]", cfg.CMP.IntermediateFiles[0], filepath.Join(dir, "pki", "intermediates.pem")},
		{"backends[0].plugin", cfg.Backends[0].Plugin, "builtin:softca"},
		{"backends[1].plugin", cfg.Backends[1].Plugin, filepath.Join(dir, "plugins", "external-ca")},
		{"profiles[0].mac_secrets[0].secret_file", cfg.Profiles[0].MACSecrets[0].SecretFile, filepath.Join(dir, "state", "secrets", "a.secret")},
		{"profiles[0].mac_secrets[1].secret_file", cfg.Profiles[0].MACSecrets[1].SecretFile, "/run/secrets/b.secret"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.key, c.got, c.want)
		}
	}
}

func TestLoadRelativeConfigPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "certgate.yaml"), []byte("data_dir: data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)

	cfg, err := Load(filepath.Join("etc", "certgate.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := filepath.Join(dir, "etc", "data"); cfg.DataDir != want {
		t.Errorf("DataDir = %q, want %q", cfg.DataDir, want)
	}
}

func TestLoadUnknownKey(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    []string
	}{
		{"top level", "data_dir: x\ndatadir: y\n", []string{`line 2: unknown key "datadir" in the top level`}},
		{"log", "log:\n  lvel: debug\n", []string{`line 2: unknown key "lvel" in log`}},
		{"responder", "cmp:\n  responder:\n    cert_file: a.pem\n", []string{`line 3: unknown key "cert_file" in cmp.responder`}},
		{"profile", "profiles:\n  - name: default\n    backend: softca\n    valdity: 1h\n", []string{`line 4: unknown key "valdity" in a profiles entry`}},
		{"san", "profiles:\n  - name: default\n    backend: softca\n    san:\n      allow_dsn: true\n", []string{`line 5: unknown key "allow_dsn" in the san of a profile`}},
		{"mac secret", "profiles:\n  - name: default\n    backend: softca\n    mac_secrets:\n      - reference: a\n        secret: x\n", []string{`line 6: unknown key "secret" in a mac_secrets entry`}},
		{"backend", "backends:\n  - name: softca\n    plugin: builtin:softca\n    hash: x\n", []string{`line 4: unknown key "hash" in a backends entry`}},
		{"two keys", "log:\n  lvel: debug\n  fromat: json\n", []string{`line 2: unknown key "lvel"`, `line 3: unknown key "fromat"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.content)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error = %q, want it to contain %q", err, want)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error = %q, want it to name the file %s", err, path)
			}
		})
	}
}

func TestLoadDecodeErrors(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    string
	}{
		{"duration without unit", "http:\n  read_timeout: 30\n", "line 2"},
		{"invalid duration", "http:\n  read_timeout: 30 seconds\n", "line 2"},
		{"list as string", "http:\n  listen: 127.0.0.1:8080\n", "line 2"},
		{"repeated key", "log:\n  level: info\n  level: debug\n", `"level" already defined`},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: debug\n", "second YAML document"},
		{"not YAML", "log: [unclosed\n", "line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, c.content))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error = %q, want it to name %s", err, path)
	}
}

func TestLoadMACReferenceRequired(t *testing.T) {
	_, err := Load(writeConfig(t, `
profiles:
  - name: default
    backend: softca
    mac_secrets:
      - reference: ""
        secret_file: a.secret
      - secret_file: b.secret
      - reference:
        secret_file: c.secret
`))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	keys := fieldErrorKeys(err)
	want := []string{"profiles[0].mac_secrets[1].reference", "profiles[0].mac_secrets[2].reference"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("problem keys = %q, want %q\nerror: %v", keys, want, err)
	}
}

func TestLoadReportsAllProblems(t *testing.T) {
	_, err := Load(writeConfig(t, `
log:
  level: loud
http:
  listen: []
profiles:
  - name: default
    backend: nothing
`))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := []string{"log.level", "http.listen", "profiles[0].backend"}
	if keys := fieldErrorKeys(err); !reflect.DeepEqual(keys, want) {
		t.Errorf("problem keys = %q, want %q\nerror: %v", keys, want, err)
	}
}

func TestBackendConfigPassedUnchanged(t *testing.T) {
	cfg := mustLoad(t, `
backends:
  - name: softca
    plugin: builtin:softca
    config:
      key_algorithm: ecdsa-p256
      nested: {list: [1, 2]}
`)
	got := cfg.Backends[0].Config
	want := map[string]any{"key_algorithm": "ecdsa-p256", "nested": map[string]any{"list": []any{1, 2}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config = %#v, want %#v", got, want)
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"} {
		if got := (Log{Level: level}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", level, got, want)
		}
	}
}

// Every struct that the YAML decoder fills needs a place name, so that an unknown key in
// it is reported by its section and not by a Go type name.
func TestEverySectionHasAName(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() != reflect.TypeOf(Config{}).PkgPath() || seen[typ] {
			return
		}
		seen[typ] = true
		if _, ok := sectionOfType[typ.String()]; !ok {
			t.Errorf("sectionOfType has no entry for %s", typ)
		}
		for i := range typ.NumField() {
			if field := typ.Field(i); field.IsExported() && field.Tag.Get("yaml") != "-" {
				walk(field.Type)
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
}
