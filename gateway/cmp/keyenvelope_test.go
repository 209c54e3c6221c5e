package cmp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// selfSigned returns a certificate for key, self-signed, with a subject key identifier.
func selfSigned(t *testing.T, name string, key crypto.Signer, usage x509.KeyUsage) *x509.Certificate {
	t.Helper()
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: usage, BasicConstraintsValid: true, IsCA: true, SubjectKeyId: []byte(name),
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

type sealCase struct {
	name      string
	password  []byte
	recipient *x509.Certificate
	key       crypto.PrivateKey
}

func sealCases(t *testing.T) []sealCase {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	return []sealCase{
		{name: "pwri", password: []byte("shared secret")},
		{name: "kari", recipient: selfSigned(t, "ec recipient", ecKey, x509.KeyUsageDigitalSignature), key: ecKey},
		{name: "ktri", recipient: selfSigned(t, "rsa recipient", rsaKey, x509.KeyUsageKeyEncipherment), key: rsaKey},
	}
}

func testKGA(t *testing.T) KeyGenerationAuthority {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return KeyGenerationAuthority{Signer: key, Certificate: selfSigned(t, "kga", key, x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign)}
}

func TestSealPrivateKeyRoundTrip(t *testing.T) {
	kga := testKGA(t)
	generated, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, c := range sealCases(t) {
		t.Run(c.name, func(t *testing.T) {
			sealed, err := SealPrivateKey(generated, kga, KeyRecipient{Password: c.password, Certificate: c.recipient})
			if err != nil {
				t.Fatal(err)
			}
			key, signer, err := OpenPrivateKey(sealed, c.password, c.recipient, c.key)
			if err != nil {
				t.Fatal(err)
			}
			if !generated.Equal(key) {
				t.Error("the opened key differs from the sealed one")
			}
			if !signer[0].Equal(kga.Certificate) {
				t.Error("the signer is not the key generation authority")
			}
		})
	}
}

func TestOpenPrivateKeyRejectsWrongSecret(t *testing.T) {
	kga := testKGA(t)
	generated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sealed, err := SealPrivateKey(generated, kga, KeyRecipient{Password: []byte("right")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenPrivateKey(sealed, []byte("wrong"), nil, nil); err == nil {
		t.Error("a wrong password opened the key")
	}
	other := sealCases(t)[1]
	if _, _, err := OpenPrivateKey(sealed, nil, other.recipient, other.key); err == nil {
		t.Error("a certificate opened a key sealed to a password")
	}
	// Flip one byte of the encrypted content: the unwrap or the signature must fail.
	damaged := append([]byte(nil), sealed...)
	damaged[len(damaged)-20] ^= 1
	if _, _, err := OpenPrivateKey(damaged, []byte("right"), nil, nil); err == nil {
		t.Error("damaged content opened")
	}
	if _, _, err := OpenPrivateKey([]byte{0xa0, 0x03, 0x02, 0x01}, []byte("right"), nil, nil); err == nil {
		t.Error("truncated input opened")
	}
}

func TestAESKeyWrapVector(t *testing.T) {
	// RFC 3394 section 4.6: 256-bit key data with a 256-bit KEK.
	kek := mustHex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	data := mustHex(t, "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want := mustHex(t, "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	got, err := aesKeyWrap(kek, data)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("wrap = %X, want %X", got, want)
	}
	back, err := aesKeyUnwrap(kek, got)
	if err != nil {
		t.Fatal(err)
	}
	if string(back) != string(data) {
		t.Errorf("unwrap = %X", back)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	out, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// contentInfo wraps a CMS content in a ContentInfo, which `openssl cms` reads.
func contentInfo(t *testing.T, contentType []int, content []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(contentType)
		b.AddASN1(contextTag(0), func(b *cryptobyte.Builder) { b.AddBytes(content) })
	})
	return b.BytesOrPanic()
}

// OpenSSL decrypts each recipient kind and verifies the key generation authority's
// signature, so the envelope is checked by an implementation other than ours.
func TestSealedKeyOpensWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	kga := testKGA(t)
	writePEM(t, filepath.Join(dir, "kga.pem"), "CERTIFICATE", kga.Certificate.Raw)
	generated, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range sealCases(t) {
		t.Run(c.name, func(t *testing.T) {
			sealed, err := SealPrivateKey(generated, kga, KeyRecipient{Password: c.password, Certificate: c.recipient})
			if err != nil {
				t.Fatal(err)
			}
			// EncryptedKey is [0] IMPLICIT EnvelopedData: retag it as a SEQUENCE.
			s := cryptobyte.String(sealed)
			var content cryptobyte.String
			s.ReadASN1(&content, contextTag(0))
			envelope := contentInfo(t, oidEnvelopedData, wrapTag(cbasn1.SEQUENCE, content))
			envFile, signedFile := filepath.Join(dir, c.name+".env.der"), filepath.Join(dir, c.name+".signed.der")
			if err := os.WriteFile(envFile, envelope, 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"cms", "-decrypt", "-inform", "DER", "-in", envFile, "-binary", "-out", signedFile}
			if c.password != nil {
				args = append(args, "-pwri_password", string(c.password))
			} else {
				keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
				if err != nil {
					t.Fatal(err)
				}
				writePEM(t, filepath.Join(dir, c.name+".key"), "PRIVATE KEY", keyDER)
				writePEM(t, filepath.Join(dir, c.name+".crt"), "CERTIFICATE", c.recipient.Raw)
				args = append(args, "-recip", filepath.Join(dir, c.name+".crt"), "-inkey", filepath.Join(dir, c.name+".key"))
			}
			if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl cms -decrypt: %v\n%s", err, out)
			}
			signed, err := os.ReadFile(signedFile)
			if err != nil {
				t.Fatal(err)
			}
			sdFile, packageFile := filepath.Join(dir, c.name+".sd.der"), filepath.Join(dir, c.name+".pkg.der")
			if err := os.WriteFile(sdFile, contentInfo(t, oidSignedData, signed), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("openssl", "cms", "-verify", "-inform", "DER", "-in", sdFile, "-binary",
				"-CAfile", filepath.Join(dir, "kga.pem"), "-purpose", "any", "-out", packageFile).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl cms -verify: %v\n%s", err, out)
			}
			keyPackage, err := os.ReadFile(packageFile)
			if err != nil {
				t.Fatal(err)
			}
			pkg := cryptobyte.String(keyPackage)
			var keys, first cryptobyte.String
			if !pkg.ReadASN1(&keys, cbasn1.SEQUENCE) || !keys.ReadASN1Element(&first, cbasn1.SEQUENCE) {
				t.Fatal("OpenSSL's output is not an AsymmetricKeyPackage")
			}
			key, err := x509.ParsePKCS8PrivateKey(first)
			if err != nil {
				t.Fatal(err)
			}
			if !generated.Equal(key) {
				t.Error("OpenSSL recovered another key")
			}
		})
	}
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzOpenPrivateKey feeds the client's decoder of centrally generated keys, seeded with
// a key sealed to each recipient kind.
func FuzzOpenPrivateKey(f *testing.F) {
	t := &testing.T{}
	kga := testKGA(t)
	generated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := sealCases(t)
	for _, c := range cases {
		sealed, err := SealPrivateKey(generated, kga, KeyRecipient{Password: c.password, Certificate: c.recipient})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range cases {
			OpenPrivateKey(data, c.password, c.recipient, c.key)
		}
	})
}
