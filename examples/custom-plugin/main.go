// Command custom-plugin is a minimal certgate backend plugin built on plugins/sdk: an
// in-memory CA that creates a new self-signed CA key on every start. It only shows the
// shape of a plugin. Its certificates stop verifying after a restart, and a repeated
// transaction ID gets a new certificate, although a real plugin must return the same
// one.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"time"

	"github.com/certgate/certgate/plugins/sdk"
)

type memoryCA struct {
	sdk.RevokeUnsupported // no revocation, so certgate does not offer it
	cert                  *x509.Certificate
	key                   *ecdsa.PrivateKey
}

func (c *memoryCA) Configure(_ context.Context, _ string, config map[string]any) error {
	name, ok := config["common_name"].(string)
	if !ok || len(config) != 1 {
		return sdk.Errorf(sdk.CategoryBadRequest, "config must hold exactly one key, common_name, with a string value")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return err
	}
	c.cert, err = x509.ParseCertificate(der)
	c.key = key
	return err
}

func (c *memoryCA) Issue(_ context.Context, req *sdk.IssueRequest) (*sdk.IssueResult, error) {
	pub, err := req.Template.PublicKey()
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	template := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)), RawSubject: req.Template.RawSubject,
		NotBefore: time.Now(), NotAfter: req.Template.NotAfter, ExtraExtensions: req.Template.Extensions,
	}
	if template.NotAfter.After(c.cert.NotAfter) {
		template.NotAfter = c.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, template, c.cert, pub, c.key)
	if err != nil {
		return nil, &sdk.Error{Category: sdk.CategoryBadTemplate, Detail: "the template cannot be signed", Err: err}
	}
	cert, err := x509.ParseCertificate(der)
	return &sdk.IssueResult{Certificate: cert, Chain: []*x509.Certificate{c.cert}}, err
}

func (c *memoryCA) CAChain(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{c.cert}, nil
}

func main() { sdk.Serve(&memoryCA{}) }
