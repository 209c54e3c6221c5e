package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/backends"
)

// buildPlugin compiles this example into a temporary directory, as a plugin author
// would, and returns the executable's path and hex SHA-256.
func buildPlugin(t *testing.T) (path, checksum string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	path = filepath.Join(t.TempDir(), "myca")
	build := exec.Command(goTool, "build", "-o", path, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

func TestCustomPluginIssues(t *testing.T) {
	path, checksum := buildPlugin(t)
	b, err := backends.LaunchPlugin(context.Background(), backends.PluginSpec{
		Name:    "myca",
		Path:    path,
		SHA256:  checksum,
		DataDir: t.TempDir(),
		Config:  map[string]any{"common_name": "Example Plugin CA"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	caps, err := b.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if caps.Revoke || caps.CRL || caps.Pending {
		t.Errorf("capabilities = %+v, want none of the optional ones", caps)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	subject, _ := asn1.Marshal(pkix.Name{CommonName: "printer-3"}.ToRDNSequence())
	res, err := b.Issue(context.Background(), &backends.IssueRequest{
		TransactionID: []byte("example-1"),
		Template: backends.Template{
			RawSubject:   subject,
			PublicKeyDER: spki,
			NotAfter:     time.Now().Add(24 * time.Hour),
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(res.Chain[len(res.Chain)-1])
	if _, err := res.Certificate.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Fatalf("the issued certificate does not chain to the plugin's CA: %v", err)
	}
	if res.Chain[0].Subject.CommonName != "Example Plugin CA" {
		t.Errorf("CA common name = %q, want the configured one", res.Chain[0].Subject.CommonName)
	}
	if !key.PublicKey.Equal(res.Certificate.PublicKey) {
		t.Error("the certificate does not certify the requested key")
	}
}

func TestCustomPluginWrongChecksum(t *testing.T) {
	path, checksum := buildPlugin(t)
	wrong := strings.Repeat("0", 64)
	_, err := backends.LaunchPlugin(context.Background(), backends.PluginSpec{
		Name:    "myca",
		Path:    path,
		SHA256:  wrong,
		DataDir: t.TempDir(),
		Config:  map[string]any{"common_name": "Example Plugin CA"},
	}, nil)
	if err == nil {
		t.Fatal("a plugin with the wrong checksum was launched")
	}
	for _, want := range []string{path, checksum, wrong} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
