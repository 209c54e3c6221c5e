package config

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
)

// maxSecretFileSize is the largest secret file accepted. A shared secret is a
// password-like string, so a larger file is most likely the wrong file.
const maxSecretFileSize = 4096

// generatedSecretBytes is the number of random bytes in a generated secret. Encoded
// with the URL-safe base64 alphabet they are 32 characters, 192 bits of entropy.
const generatedSecretBytes = 24

// MACSecret is a loaded shared secret for MAC-protected CMP requests. Its String,
// GoString and LogValue methods leave the secret out, so that printing or logging a
// MACSecret by mistake does not reveal it.
type MACSecret struct {
	Reference string // senderKID as text; "" matches requests without senderKID
	Secret    []byte
}

func (s MACSecret) String() string {
	return fmt.Sprintf("MACSecret{Reference: %q, Secret: [redacted]}", s.Reference)
}

func (s MACSecret) GoString() string { return s.String() }

func (s MACSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("reference", s.Reference))
}

// LoadMACSecrets reads the secret file of each mac_secrets entry of p, in order.
// One trailing newline (LF or CRLF) is removed from the file content.
//
// A missing file is created when the entry has generate: true. The new file has
// mode 0600 and contains 32 random characters from the URL-safe base64 alphabet,
// and missing parent folders are created with mode 0700. Without generate, a
// missing file is an error.
//
// Empty files and files larger than 4096 bytes are rejected. On Unix, so is a file
// that group or others may access. Errors name the profile, the reference and the
// file, never the secret.
func (p *Profile) LoadMACSecrets() ([]MACSecret, error) {
	secrets := make([]MACSecret, 0, len(p.MACSecrets))
	var problems []error
	for _, entry := range p.MACSecrets {
		secret, err := loadSecretFile(entry.SecretFile, entry.Generate)
		if err != nil {
			problems = append(problems, fmt.Errorf("config: profile %q, mac secret %q: %w", p.Name, entry.Reference, err))
			continue
		}
		secrets = append(secrets, MACSecret{Reference: entry.Reference, Secret: secret})
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return secrets, nil
}

func loadSecretFile(path string, generate bool) ([]byte, error) {
	if path == "" {
		return nil, errors.New("secret_file is empty")
	}
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && generate {
		err = generateSecretFile(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secret file %s does not exist; create it with the shared secret and mode 0600, or set generate: true", path)
	}
	if err != nil {
		return nil, err
	}

	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	// The checks use the opened file, so that a file swapped after them is not read.
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("secret file %s is not a regular file", path)
	}
	// NOTE: Windows has no group and other permission bits, so the check is skipped
	// there and the file's ACL is not inspected.
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret file %s is accessible by group or others (mode %04o); run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	if info.Size() > maxSecretFileSize {
		return nil, fmt.Errorf("secret file %s is %d bytes, more than the maximum of %d for a shared secret; check that it is the right file", path, info.Size(), maxSecretFileSize)
	}

	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretFileSize {
		return nil, fmt.Errorf("secret file %s grew beyond %d bytes while it was read", path, maxSecretFileSize)
	}
	if trimmed, ok := bytes.CutSuffix(data, []byte("\r\n")); ok {
		data = trimmed
	} else {
		data, _ = bytes.CutSuffix(data, []byte("\n"))
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("secret file %s is empty; write the shared secret into it, or delete it and set generate: true", path)
	}
	return data, nil
}

// generateSecretFile creates path with a random secret and a trailing newline. The
// secret is written to a temporary file first and then linked to path, so no reader
// ever sees a partly written file. When another process creates path first,
// generateSecretFile leaves that file alone and returns nil, so both processes use
// the same secret.
func generateSecretFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create folder for secret file: %w", err)
	}

	random := make([]byte, generatedSecretBytes)
	rand.Read(random) // never returns an error: it crashes the program when the system source fails
	content := base64.RawURLEncoding.AppendEncode(nil, random)
	content = append(content, '\n')

	tmp, err := os.CreateTemp(dir, ".secret-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("create secret file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("write secret file: %w", err)
	}

	err = os.Link(tmp.Name(), path)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create secret file %s: %w; create it yourself with a shared secret and mode 0600", path, err)
	}
	return syncDir(dir)
}

// syncDir flushes the directory entry of a new file to disk, so that the file
// survives a power loss. A generated secret that disappeared would be replaced by a
// new one that no client has.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // syncing a directory to persist a new entry is a Unix idiom
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder of secret file: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder of secret file: %w", err)
	}
	return nil
}

// ArchiveKeyFile is the path, relative to data_dir, of the secret that encrypts
// archived keys.
const ArchiveKeyFile = "secrets/key-archive.key"

// LoadArchiveKey returns the 32-byte key that encrypts centrally generated keys in the
// store. It is derived with HKDF-SHA256 from the secret in ArchiveKeyFile under
// dataDir, which is created with a random secret on first use. Losing that file makes
// the archived keys unrecoverable.
func LoadArchiveKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, ArchiveKeyFile)
	secret, err := loadSecretFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("config: key archive: %w", err)
	}
	return hkdf.Key(sha256.New, secret, nil, "certgate key archive", 32)
}
