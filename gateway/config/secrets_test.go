package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func skipOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no group and other permission bits")
	}
}

func profileWithSecret(path string, generate bool) *Profile {
	return &Profile{
		Name:       "default",
		MACSecrets: []MACSecretConfig{{Reference: "ref-1", SecretFile: path, Generate: generate}},
	}
}

// writeSecret writes content to path with the given mode, whatever the umask.
func writeSecret(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMACSecretsGenerates(t *testing.T) {
	skipOnWindows(t)
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, "secrets", "nested", "cmp.secret")

	secrets, err := profileWithSecret(path, true).LoadMACSecrets()
	if err != nil {
		t.Fatalf("LoadMACSecrets: %v", err)
	}
	if len(secrets) != 1 {
		t.Fatalf("got %d secrets, want 1", len(secrets))
	}
	secret := secrets[0]
	if secret.Reference != "ref-1" {
		t.Errorf("Reference = %q, want ref-1", secret.Reference)
	}
	if len(secret.Secret) != 32 {
		t.Errorf("secret length = %d, want 32", len(secret.Secret))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`).Match(secret.Secret) {
		t.Error("secret contains characters outside the URL-safe base64 alphabet")
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("secret file mode = %04o, want 0600", got)
	}
	for _, dir := range []string{filepath.Join(dataDir, "secrets"), filepath.Join(dataDir, "secrets", "nested")} {
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o700 {
			t.Errorf("%s mode = %04o, want 0700", filepath.Base(dir), got)
		}
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Clone(secret.Secret), '\n'); !bytes.Equal(content, want) {
		t.Error("file content is not the returned secret followed by a newline")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("secret folder contains %d entries, want only the secret file (no temporary file left)", len(entries))
	}

	again, err := profileWithSecret(path, true).LoadMACSecrets()
	if err != nil {
		t.Fatalf("second LoadMACSecrets: %v", err)
	}
	if !bytes.Equal(again[0].Secret, secret.Secret) {
		t.Error("second load returned a different secret; the generated file must be reused")
	}
}

func TestLoadMACSecretsGeneratesDistinct(t *testing.T) {
	dir := t.TempDir()
	a, err := profileWithSecret(filepath.Join(dir, "a.secret"), true).LoadMACSecrets()
	if err != nil {
		t.Fatal(err)
	}
	b, err := profileWithSecret(filepath.Join(dir, "b.secret"), true).LoadMACSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[0].Secret, b[0].Secret) {
		t.Error("two generated secrets are equal")
	}
}

func TestLoadMACSecretsTrimsOneNewline(t *testing.T) {
	cases := map[string]string{
		"s3cret":     "s3cret",
		"s3cret\n":   "s3cret",
		"s3cret\r\n": "s3cret",
		"s3cret\n\n": "s3cret\n",
		" s3cret \n": " s3cret ",
	}
	for content, want := range cases {
		path := filepath.Join(t.TempDir(), "cmp.secret")
		writeSecret(t, path, content, 0o600)

		secrets, err := profileWithSecret(path, false).LoadMACSecrets()
		if err != nil {
			t.Errorf("content %q: %v", content, err)
			continue
		}
		if got := string(secrets[0].Secret); got != want {
			t.Errorf("content %q: secret = %q, want %q", content, got, want)
		}
	}
}

func TestLoadMACSecretsRejectsGroupReadable(t *testing.T) {
	skipOnWindows(t)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o644} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cmp.secret")
			writeSecret(t, path, "do-not-print-me\n", mode)

			_, err := profileWithSecret(path, false).LoadMACSecrets()
			if err == nil {
				t.Fatal("LoadMACSecrets accepted the file")
			}
			msg := err.Error()
			if !strings.Contains(msg, "chmod 600 "+path) {
				t.Errorf("error = %q, want it to tell to run chmod 600 on the file", msg)
			}
			if !strings.Contains(msg, fmt.Sprintf("mode %04o", mode)) {
				t.Errorf("error = %q, want it to show the mode", msg)
			}
			if !strings.Contains(msg, `profile "default", mac secret "ref-1"`) {
				t.Errorf("error = %q, want it to name the profile and the reference", msg)
			}
			if strings.Contains(msg, "do-not-print-me") {
				t.Error("error contains the secret")
			}
		})
	}
}

func TestLoadMACSecretsMissingWithoutGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.secret")
	_, err := profileWithSecret(path, false).LoadMACSecrets()
	if err == nil {
		t.Fatal("LoadMACSecrets succeeded")
	}
	if !strings.Contains(err.Error(), path+" does not exist") {
		t.Errorf("error = %q, want it to say the file does not exist", err)
	}
	if !strings.Contains(err.Error(), "generate: true") {
		t.Errorf("error = %q, want it to mention generate: true", err)
	}
	if _, statErr := os.Stat(path); statErr == nil {
		t.Error("LoadMACSecrets created the file although generate is false")
	}
}

func TestLoadMACSecretsRejectsBadFiles(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    string
	}{
		{"empty", "", "is empty"},
		{"newline only", "\n", "is empty"},
		{"too large", strings.Repeat("x", maxSecretFileSize+1), "more than the maximum of 4096"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cmp.secret")
			writeSecret(t, path, c.content, 0o600)

			_, err := profileWithSecret(path, true).LoadMACSecrets()
			if err == nil {
				t.Fatal("LoadMACSecrets succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadMACSecretsMaximumSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmp.secret")
	writeSecret(t, path, strings.Repeat("x", maxSecretFileSize), 0o600)
	secrets, err := profileWithSecret(path, false).LoadMACSecrets()
	if err != nil {
		t.Fatalf("LoadMACSecrets: %v", err)
	}
	if len(secrets[0].Secret) != maxSecretFileSize {
		t.Errorf("secret length = %d, want %d", len(secrets[0].Secret), maxSecretFileSize)
	}
}

func TestLoadMACSecretsRejectsDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmp.secret")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := profileWithSecret(path, true).LoadMACSecrets()
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("err = %v, want a not-a-regular-file error", err)
	}
}

func TestLoadMACSecretsReportsEveryEntry(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.secret")
	writeSecret(t, good, "fine", 0o600)
	p := &Profile{
		Name: "devices",
		MACSecrets: []MACSecretConfig{
			{Reference: "missing", SecretFile: filepath.Join(dir, "missing.secret")},
			{Reference: "good", SecretFile: good},
			{Reference: "empty", SecretFile: ""},
		},
	}
	_, err := p.LoadMACSecrets()
	if err == nil {
		t.Fatal("LoadMACSecrets succeeded")
	}
	for _, want := range []string{`mac secret "missing"`, `mac secret "empty": secret_file is empty`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `mac secret "good"`) {
		t.Errorf("error = %q names the entry that loaded", err)
	}
}

func TestLoadMACSecretsKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	var entries []MACSecretConfig
	for _, ref := range []string{"c", "", "a"} {
		path := filepath.Join(dir, "ref-"+ref+".secret")
		writeSecret(t, path, "secret-"+ref, 0o600)
		entries = append(entries, MACSecretConfig{Reference: ref, SecretFile: path})
	}
	secrets, err := (&Profile{Name: "p", MACSecrets: entries}).LoadMACSecrets()
	if err != nil {
		t.Fatalf("LoadMACSecrets: %v", err)
	}
	if len(secrets) != len(entries) {
		t.Fatalf("got %d secrets, want %d", len(secrets), len(entries))
	}
	for i, s := range secrets {
		if s.Reference != entries[i].Reference {
			t.Errorf("secrets[%d].Reference = %q, want %q", i, s.Reference, entries[i].Reference)
		}
		if want := "secret-" + entries[i].Reference; string(s.Secret) != want {
			t.Errorf("secrets[%d] does not contain the content of %s", i, filepath.Base(entries[i].SecretFile))
		}
	}
}

func TestMACSecretFormattingHidesSecret(t *testing.T) {
	s := MACSecret{Reference: "device-7", Secret: []byte("hunter2-hunter2")}

	var logOutput bytes.Buffer
	slog.New(slog.NewTextHandler(&logOutput, nil)).Info("loaded", "secret", s)
	slog.New(slog.NewJSONHandler(&logOutput, nil)).Info("loaded", "secret", s)

	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", s),
		"%#v":  fmt.Sprintf("%#v", s),
		"%s":   fmt.Sprintf("%s", s),
		"%v &": fmt.Sprintf("%v", &s),
		"[]%v": fmt.Sprintf("%v", []MACSecret{s}),
		"slog": logOutput.String(),
	}
	for format, out := range outputs {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s output contains the secret: %s", format, out)
		}
		if !strings.Contains(out, "device-7") {
			t.Errorf("%s output does not contain the reference: %s", format, out)
		}
	}
}
