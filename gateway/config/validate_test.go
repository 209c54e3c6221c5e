package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fieldErrorKeys returns the keys of the *FieldError values in err, in order,
// looking through wrapping and errors.Join.
func fieldErrorKeys(err error) []string {
	var keys []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case *FieldError:
			keys = append(keys, e.Key)
		default:
			walk(errors.Unwrap(err))
		}
	}
	walk(err)
	return keys
}

// validConfig returns a valid configuration with two backends and two profiles, so
// that cases can refer to index 1.
func validConfig() *Config {
	cfg := Default()
	cfg.Backends = append(cfg.Backends, Backend{
		Name:           "external",
		Plugin:         "/opt/certgate/plugins/external-ca",
		SHA256:         strings.Repeat("ab", 32),
		Args:           []string{"--verbose"},
		HealthInterval: 30 * time.Second,
	})
	devices := cfg.Profiles[0]
	devices.Name = "devices"
	devices.Backend = "external"
	devices.KeyTypes = []string{"ecdsa-p256"}
	devices.SAN.DNSSuffixes = []string{"devices.example.com"}
	devices.MACSecrets = []MACSecretConfig{
		{Reference: "", SecretFile: "/var/lib/certgate/secrets/anonymous.secret"},
		{Reference: "factory", SecretFile: "/var/lib/certgate/secrets/factory.secret", Generate: true},
	}
	cfg.Profiles = append(cfg.Profiles, devices)
	return cfg
}

func TestValidConfigPasses(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateAcceptsEdgeValues(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Config)
	}{
		{"port 0 twice", func(c *Config) { c.HTTP.Listen = []string{":0", ":0", "[::1]:0"} }},
		{"empty host", func(c *Config) { c.HTTP.Listen = []string{":8443"} }},
		{"IPv6 host", func(c *Config) { c.HTTP.Listen = []string{"[::1]:8080"} }},
		{"host name", func(c *Config) { c.HTTP.Listen = []string{"localhost:8080"} }},
		{"minimum request size", func(c *Config) { c.HTTP.MaxRequestBytes = 1024 }},
		{"maximum request size", func(c *Config) { c.HTTP.MaxRequestBytes = 16777216 }},
		{"time check off", func(c *Config) { c.CMP.MessageTimeTolerance = 0 }},
		{"responder set", func(c *Config) { c.CMP.Responder = Responder{CertificateFile: "/a.pem", KeyFile: "/a.key"} }},
		{"uppercase sha256", func(c *Config) { c.Backends[1].SHA256 = strings.Repeat("AB", 32) }},
		{"minimum validity", func(c *Config) { c.Profiles[0].Validity = time.Hour }},
		{"maximum validity", func(c *Config) { c.Profiles[0].Validity = 87600 * time.Hour }},
		{"profile name punctuation", func(c *Config) { c.Profiles[1].Name = "Device_v2.0-beta" }},
		{"single label suffix", func(c *Config) { c.Profiles[1].SAN.DNSSuffixes = []string{"internal"} }},
		{"minimum health interval", func(c *Config) { c.Backends[0].HealthInterval = time.Second }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig()
			c.modify(cfg)
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateProblems(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Config)
		key    string   // key of the problem the case is about
		want   string   // text that the problem must contain
		others []string // keys of the problems that follow from the same change
	}{
		{"empty data_dir", func(c *Config) { c.DataDir = "" }, "data_dir", "is empty", nil},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level", `"verbose" is not a log level; use debug, info, warn or error`, nil},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format", `"xml" is not a log format`, nil},
		{"no listen address", func(c *Config) { c.HTTP.Listen = nil }, "http.listen", "has no address", nil},
		{"listen without port", func(c *Config) { c.HTTP.Listen = []string{"8080"} }, "http.listen[0]", `"8080" is not host:port`, nil},
		{"listen IPv6 without brackets", func(c *Config) { c.HTTP.Listen = []string{"::1:8080"} }, "http.listen[0]", "is not host:port", nil},
		{"listen named port", func(c *Config) { c.HTTP.Listen = []string{":0", "localhost:http"} }, "http.listen[1]", `port "http"`, nil},
		{"listen port too large", func(c *Config) { c.HTTP.Listen = []string{":65536"} }, "http.listen[0]", "from 0 to 65535", nil},
		{"listen duplicate", func(c *Config) { c.HTTP.Listen = []string{"127.0.0.1:8080", "127.0.0.1:08080"} }, "http.listen[1]", "already listed at http.listen[0]", nil},
		{"request size too small", func(c *Config) { c.HTTP.MaxRequestBytes = 1023 }, "http.max_request_bytes", "1023 is outside the range 1024 to 16777216", nil},
		{"request size too large", func(c *Config) { c.HTTP.MaxRequestBytes = 16777217 }, "http.max_request_bytes", "outside the range", nil},
		{"read timeout zero", func(c *Config) { c.HTTP.ReadTimeout = 0 }, "http.read_timeout", "0s is not greater than 0", nil},
		{"write timeout negative", func(c *Config) { c.HTTP.WriteTimeout = -time.Second }, "http.write_timeout", "-1s is not greater than 0", nil},
		{"idle timeout zero", func(c *Config) { c.HTTP.IdleTimeout = 0 }, "http.idle_timeout", "not greater than 0", nil},
		{"default profile empty", func(c *Config) { c.CMP.DefaultProfile = "" }, "cmp.default_profile", "is empty; set it to one of the profiles: default, devices", nil},
		{"default profile unknown", func(c *Config) { c.CMP.DefaultProfile = "web" }, "cmp.default_profile", `"web" is not a configured profile; configured: default, devices`, nil},
		{"time tolerance negative", func(c *Config) { c.CMP.MessageTimeTolerance = -time.Minute }, "cmp.message_time_tolerance", "is negative", nil},
		{"transaction timeout zero", func(c *Config) { c.CMP.TransactionTimeout = 0 }, "cmp.transaction_timeout", "not greater than 0", nil},
		{"responder key only", func(c *Config) { c.CMP.Responder.KeyFile = "/k.pem" }, "cmp.responder.certificate_file", "set both files or neither", nil},
		{"responder certificate only", func(c *Config) { c.CMP.Responder.CertificateFile = "/c.pem" }, "cmp.responder.key_file", "set both files or neither", nil},
		{"empty trusted root", func(c *Config) { c.CMP.TrustedRootsFiles = []string{"/roots.pem", ""} }, "cmp.trusted_roots_files[1]", "is empty", nil},
		{"empty intermediate", func(c *Config) { c.CMP.IntermediateFiles = []string{""} }, "cmp.intermediate_files[0]", "is empty", nil},
		{"no backend", func(c *Config) { c.Backends = nil }, "backends", "has no entry", []string{"profiles[0].backend", "profiles[1].backend"}},
		{"backend name empty", func(c *Config) { c.Backends[1].Name = "" }, "backends[1].name", "is empty", []string{"profiles[1].backend"}},
		{"backend name uppercase", func(c *Config) { c.Backends[1].Name = "External"; c.Profiles[1].Backend = "External" }, "backends[1].name", `"External" contains characters other than lowercase letters`, nil},
		{"backend name duplicate", func(c *Config) { c.Backends[1].Name = "softca" }, "backends[1].name", `"softca" is already used by backends[0]`, []string{"profiles[1].backend"}},
		{"plugin empty", func(c *Config) { c.Backends[1].Plugin = "" }, "backends[1].plugin", "is empty; set builtin:<name> (built-ins: softca, upstream-cmp)", nil},
		{"unknown built-in", func(c *Config) { c.Backends[0].Plugin = "builtin:hsm" }, "backends[0].plugin", `"builtin:hsm" is not a built-in backend; built-ins: softca`, nil},
		{"built-in with sha256", func(c *Config) { c.Backends[0].SHA256 = strings.Repeat("ab", 32) }, "backends[0].sha256", "is set for a built-in backend", nil},
		{"built-in with args", func(c *Config) { c.Backends[0].Args = []string{"-v"} }, "backends[0].args", "is set for a built-in backend", nil},
		{"executable without sha256", func(c *Config) { c.Backends[1].SHA256 = "" }, "backends[1].sha256", "is empty; set it to the SHA-256 digest of /opt/certgate/plugins/external-ca", nil},
		{"sha256 too short", func(c *Config) { c.Backends[1].SHA256 = "abcd" }, "backends[1].sha256", `"abcd" is not a SHA-256 digest`, nil},
		{"sha256 not hex", func(c *Config) { c.Backends[1].SHA256 = strings.Repeat("zz", 32) }, "backends[1].sha256", "64 hexadecimal digits", nil},
		{"health interval short", func(c *Config) { c.Backends[0].HealthInterval = 500 * time.Millisecond }, "backends[0].health_interval", "500ms is shorter than the minimum of 1s", nil},
		{"no profile", func(c *Config) { c.Profiles = nil }, "profiles", "has no entry", []string{"cmp.default_profile"}},
		{"profile name empty", func(c *Config) { c.Profiles[1].Name = "" }, "profiles[1].name", "is empty", nil},
		{"profile name slash", func(c *Config) { c.Profiles[1].Name = "a/b" }, "profiles[1].name", `"a/b" contains characters other than letters`, nil},
		{"profile name dot dot", func(c *Config) { c.Profiles[1].Name = ".." }, "profiles[1].name", "relative path segment", nil},
		{"profile name duplicate", func(c *Config) { c.Profiles[1].Name = "default" }, "profiles[1].name", `"default" is already used by profiles[0]`, nil},
		{"profile backend empty", func(c *Config) { c.Profiles[1].Backend = "" }, "profiles[1].backend", "is empty; set it to one of the backends: softca, external", nil},
		{"validity short", func(c *Config) { c.Profiles[0].Validity = 59 * time.Minute }, "profiles[0].validity", "59m0s is outside the range 1h to 87600h", nil},
		{"validity long", func(c *Config) { c.Profiles[0].Validity = 87601 * time.Hour }, "profiles[0].validity", "outside the range", nil},
		{"key types empty", func(c *Config) { c.Profiles[1].KeyTypes = []string{}; c.Profiles[1].CentralKeyGen = CentralKeyGen{} }, "profiles[1].key_types", "is empty; list at least one of: ecdsa-p256", nil},
		{"key type unknown", func(c *Config) { c.Profiles[1].KeyTypes = []string{"ecdsa-p256", "rsa-1024"} }, "profiles[1].key_types[1]", `"rsa-1024" is not a known key type; known: ecdsa-p256, ecdsa-p384`, nil},
		{"key type duplicate", func(c *Config) {
			c.Profiles[1].KeyTypes = []string{"ed25519", "ed25519"}
			c.Profiles[1].CentralKeyGen = CentralKeyGen{}
		}, "profiles[1].key_types[1]", "already listed at profiles[1].key_types[0]", nil},
		{"synchronous unknown", func(c *Config) { c.Database.Synchronous = "extra" }, "database.synchronous", `"extra" is not a synchronous setting; use normal or full`, nil},
		{"keygen type missing", func(c *Config) { c.Profiles[1].CentralKeyGen = CentralKeyGen{Enabled: true} }, "profiles[1].central_keygen.key_type", "is empty; name the key type", nil},
		{"keygen type not allowed", func(c *Config) {
			c.Profiles[1].CentralKeyGen = CentralKeyGen{Enabled: true, KeyType: "rsa-2048"}
			c.Profiles[1].KeyTypes = []string{"ecdsa-p256"}
		}, "profiles[1].central_keygen.key_type", `"rsa-2048" is not one of the profile's key_types (ecdsa-p256)`, nil},
		{"recovery without keygen", func(c *Config) { c.Profiles[1].CentralKeyGen = CentralKeyGen{KeyRecovery: true} }, "profiles[1].central_keygen.key_recovery", "central key generation is off", nil},
		{"suffix without DNS", func(c *Config) { c.Profiles[1].SAN.AllowDNS = false }, "profiles[1].san.dns_suffixes", "profiles[1].san.allow_dns is false", nil},
		{"suffix empty", func(c *Config) { c.Profiles[1].SAN.DNSSuffixes = []string{""} }, "profiles[1].san.dns_suffixes[0]", "is empty", nil},
		{"suffix leading dot", func(c *Config) { c.Profiles[1].SAN.DNSSuffixes = []string{".example.com"} }, "profiles[1].san.dns_suffixes[0]", "without it, such as example.com", nil},
		{"suffix trailing dot", func(c *Config) { c.Profiles[1].SAN.DNSSuffixes = []string{"example.com."} }, "profiles[1].san.dns_suffixes[0]", "ends with a dot", nil},
		{"suffix underscore", func(c *Config) { c.Profiles[1].SAN.DNSSuffixes = []string{"a.ex_ample.com"} }, "profiles[1].san.dns_suffixes[0]", `label "ex_ample"`, nil},
		{"suffix empty label", func(c *Config) { c.Profiles[1].SAN.DNSSuffixes = []string{"example..com"} }, "profiles[1].san.dns_suffixes[0]", `label ""`, nil},
		{"suffix too long", func(c *Config) { c.Profiles[1].SAN.DNSSuffixes = []string{strings.Repeat("a.", 127) + "com"} }, "profiles[1].san.dns_suffixes[0]", "longer than the 253 characters", nil},
		{"mac reference twice", func(c *Config) { c.Profiles[1].MACSecrets[1].Reference = "" }, "profiles[1].mac_secrets[1].reference", `"" is already used by profiles[1].mac_secrets[0]`, nil},
		{"secret file empty", func(c *Config) { c.Profiles[1].MACSecrets[0].SecretFile = "" }, "profiles[1].mac_secrets[0].secret_file", "set generate: true", nil},
		{"secret file empty with generate", func(c *Config) { c.Profiles[1].MACSecrets[1].SecretFile = "" }, "profiles[1].mac_secrets[1].secret_file", "is empty; set the path", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig()
			c.modify(cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}

			wantKeys := append([]string{c.key}, c.others...)
			gotKeys := fieldErrorKeys(err)
			if !sameElements(gotKeys, wantKeys) {
				t.Errorf("problem keys = %q, want %q\nerror: %v", gotKeys, wantKeys, err)
			}

			var problem string
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, c.key+": ") {
					problem = line
				}
			}
			if problem == "" {
				t.Fatalf("no problem starts with %q\nerror: %v", c.key+": ", err)
			}
			if !strings.Contains(problem, c.want) {
				t.Errorf("problem = %q, want it to contain %q", problem, c.want)
			}
		})
	}
}

// TestValidateUnknownBackendMessage checks the complete text of one problem: key
// path, value, problem and the configured choices.
func TestValidateUnknownBackendMessage(t *testing.T) {
	cfg := Default()
	cfg.Profiles = append(cfg.Profiles, Profile{
		Name:     "web",
		Backend:  "foo",
		Validity: 24 * time.Hour,
		KeyTypes: []string{"ecdsa-p256"},
	})
	err := cfg.Validate()
	want := `profiles[1].backend: "foo" is not a configured backend; configured: softca`
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %q", err, want)
	}
}

func TestValidateReturnsAllProblems(t *testing.T) {
	cfg := validConfig()
	cfg.Log.Level = "loud"
	cfg.HTTP.Listen = nil
	cfg.Backends[1].SHA256 = ""
	cfg.Profiles[0].Validity = 0

	want := []string{"log.level", "http.listen", "backends[1].sha256", "profiles[0].validity"}
	if got := fieldErrorKeys(cfg.Validate()); !reflect.DeepEqual(got, want) {
		t.Errorf("problem keys = %q, want %q", got, want)
	}
}

func sameElements(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := make(map[string]int, len(a))
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
		if count[s] < 0 {
			return false
		}
	}
	return true
}
