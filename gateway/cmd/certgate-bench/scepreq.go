package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/frontends/scep"
)

// Algorithms of the scep-pkcsreq workload: RSA 2048 client keys, and the defaults of
// strongSwan's pki --scep, AES-128-CBC and SHA-256.
const (
	scepKeyBits           = 2048
	scepContentEncryption = "aes128-cbc"
	scepDigest            = crypto.SHA256
)

// scepResponseLegacy are the algorithms the generator accepts in a CertRep. micromdm's
// scepserver 2.1.0 encrypts every CertRep with single DES and signs it with SHA-1,
// whatever the request used, so the check accepts both and the report names what the
// server chose.
var scepResponseLegacy = scep.LegacyAlgorithms{DES: true, SHA1: true}

// oidChallengePassword is the PKCS #9 challengePassword attribute (RFC 2985 section
// 5.4.1).
var oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}

// scepPKCSReq is the scep-pkcsreq workload: a PKCSReq (RFC 8894 section 3.3.1) with a
// challenge password, sent by HTTP POST with operation=PKIOperation and keep-alive. A
// SUCCESS CertRep carries the certificate, so one request is one whole enrollment.
//
// The client keys come from a small pool, because an RSA key takes about 0.1 s to
// generate, and each key has a self-signed signer certificate. Every message has its
// own subject, PKCS #10 request, transactionID and senderNonce, so it costs the
// generator two RSA signatures. Distinct subjects matter for scepserver 2.1.0: its file
// depot names each certificate file after the subject and the serial number it reads
// without a lock, so two concurrent requests for one subject can collide and fail.
//
// Two RSA 2048 signatures take about 2.6 ms of CPU on the 2-core benchmark machine, so
// the pools that load prepares before each phase (at least 5,000 requests) would take
// seconds each. Prepare therefore builds at most -scep-messages distinct messages and
// repeats them in turn. Neither server rejects a repeated transactionID or senderNonce:
// certgate starts a new CMP transaction for every PKCSReq and remembers a SCEP
// transactionID only while an enrollment is pending, and scepserver 2.1.0 keeps no state
// per transaction. A repeated subject needs scepserver's -allowrenew 0, because by
// default it rejects a second certificate for a subject whose first is more than 14
// days from expiry.
type scepPKCSReq struct {
	url        string
	challenge  string
	messages   int
	clients    []scepClient
	caCerts    []*x509.Certificate // the GetCACert response
	recipient  *x509.Certificate   // the certificate requests are encrypted to
	caCaps     string              // the GetCACaps response, one line
	httpSender *httpTransport

	// responseAlgorithms names the CertRep algorithms seen in Check, for Describe.
	responseAlgorithms string
}

// scepClient is one client key and its self-signed signer certificate. The signer
// certificate's subject differs from the subjects of the requests, which neither
// server checks.
type scepClient struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func registerSCEPPKCSReq(fs *flag.FlagSet) func() (Workload, error) {
	url := fs.String("scep-url", "http://127.0.0.1:8080/scep", "SCEP URL of the server, without the query; the generator adds ?operation=...")
	challengeFile := fs.String("challenge-file", "", "file with the SCEP challenge password (required for scep-pkcsreq)")
	keys := fs.Int("scep-keys", 8, "number of distinct RSA 2048 client keys that the SCEP requests use in turn; each takes about 0.1 s of CPU to generate")
	messages := fs.Int("scep-messages", 1000, "maximum number of distinct SCEP messages built for one phase; a phase that needs more sends them again in turn")
	return func() (Workload, error) {
		challenge, err := readSecret(*challengeFile, "-challenge-file", "the SCEP challenge password")
		if err != nil {
			return nil, err
		}
		if *keys < 1 {
			return nil, fmt.Errorf("-scep-keys must be at least 1, got %d", *keys)
		}
		if *messages < 1 {
			return nil, fmt.Errorf("-scep-messages must be at least 1, got %d", *messages)
		}
		return newSCEPPKCSReq(*url, string(challenge), *keys, *messages)
	}
}

func newSCEPPKCSReq(url, challenge string, keys, messages int) (*scepPKCSReq, error) {
	url = strings.TrimRight(url, "/")
	w := &scepPKCSReq{
		url:        url,
		challenge:  challenge,
		messages:   messages,
		httpSender: newHTTPTransport(url+"?operation=PKIOperation", "application/x-pki-message", true),
	}
	if err := w.fetchCACerts(); err != nil {
		return nil, err
	}
	caps, err := scepGet(url + "?operation=GetCACaps")
	if err != nil {
		return nil, err
	}
	w.caCaps = strings.Join(strings.Fields(string(caps.body)), " ")

	w.clients = make([]scepClient, keys)
	err = forEachParallel(keys, func(i int) error {
		client, err := newSCEPClient(fmt.Sprintf("certgate-bench scep signer %d", i))
		w.clients[i] = client
		return err
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// scepResponse is the body and media type of a GET response.
type scepResponse struct {
	body        []byte
	contentType string
}

// scepGet sends a GET request for one of the operations that need no message.
func scepGet(url string) (*scepResponse, error) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP status %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return &scepResponse{body: body, contentType: resp.Header.Get("Content-Type")}, nil
}

// fetchCACerts reads GetCACert and chooses the certificate to encrypt requests to, as
// RFC 8894 section 3.5.1 describes. An application/x-x509-ca-cert response is the CA
// certificate itself. In an application/x-x509-ca-ra-cert response, it is the RA
// certificate: the one without cA that allows keyEncipherment.
func (w *scepPKCSReq) fetchCACerts() error {
	resp, err := scepGet(w.url + "?operation=GetCACert")
	if err != nil {
		return err
	}
	if cert, err := x509.ParseCertificate(resp.body); err == nil {
		w.caCerts = []*x509.Certificate{cert}
	} else if w.caCerts, _, err = scep.ParseDegenerate(resp.body); err != nil {
		return fmt.Errorf("the GetCACert response (%s) is neither a certificate nor a degenerate PKCS #7: %w", resp.contentType, err)
	}
	switch {
	case len(w.caCerts) == 0:
		return errors.New("the GetCACert response carries no certificate")
	case len(w.caCerts) == 1:
		w.recipient = w.caCerts[0]
	default:
		for _, cert := range w.caCerts {
			if !cert.IsCA && cert.KeyUsage&x509.KeyUsageKeyEncipherment != 0 {
				w.recipient = cert
				break
			}
		}
		if w.recipient == nil {
			return fmt.Errorf("the GetCACert response carries %d certificates but no RA certificate (without cA, with keyEncipherment)", len(w.caCerts))
		}
	}
	if _, ok := w.recipient.PublicKey.(*rsa.PublicKey); !ok {
		return fmt.Errorf("the certificate to encrypt to (%s) has a %s key, but SCEP encrypts only to RSA keys", w.recipient.Subject, w.recipient.PublicKeyAlgorithm)
	}
	return nil
}

// newSCEPClient generates an RSA key and its self-signed signer certificate.
func newSCEPClient(commonName string) (scepClient, error) {
	key, err := rsa.GenerateKey(rand.Reader, scepKeyBits)
	if err != nil {
		return scepClient{}, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return scepClient{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return scepClient{}, err
	}
	return scepClient{key: key, cert: cert}, nil
}

// challengeCSR returns a PKCS #10 request (RFC 2986) for the key with the
// challengePassword attribute, signed with SHA-256. crypto/x509 cannot write that
// attribute, whose value is a DirectoryString, so the request is built here.
func challengeCSR(key *rsa.PrivateKey, commonName, challenge string) ([]byte, error) {
	subject, err := rawName(commonName)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	value, err := asn1.Marshal(challenge) // PrintableString, or UTF8String when needed
	if err != nil {
		return nil, err
	}

	var info cryptobyte.Builder
	info.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddBytes(subject)
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidChallengePassword)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(value) })
			})
		})
	})
	tbs, err := info.Bytes()
	if err != nil {
		return nil, err
	}

	digest := sha256.Sum256(tbs)
	signature, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, err
	}

	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}) // sha256WithRSAEncryption
			b.AddASN1NULL()
		})
		b.AddASN1BitString(signature)
	})
	der, err := out.Bytes()
	if err != nil {
		return nil, err
	}
	return der, nil
}

func (w *scepPKCSReq) Describe() string {
	text := fmt.Sprintf("SCEP PKCSReq over HTTP POST with keep-alive, RSA %d client key with a self-signed signer certificate, "+
		"challenge password, %s content encryption, %s signature, encrypted to %s; "+
		"a new subject per message, at most %d distinct messages per phase, sent again in turn; GetCACaps: %s",
		scepKeyBits, scepContentEncryption, strings.ToLower(scepDigest.String()), w.recipientDescription(), w.messages, w.caCaps)
	if w.responseAlgorithms != "" {
		text += "; CertRep: " + w.responseAlgorithms
	}
	return text
}

func (w *scepPKCSReq) recipientDescription() string {
	if len(w.caCerts) == 1 {
		return "the CA certificate of GetCACert"
	}
	return "the RA certificate of GetCACert"
}

// Prepare builds min(n, w.messages) distinct messages on all cores and returns n
// requests that repeat them in turn. The subjects carry a random tag per call, so that
// the warm-up and each timed phase enroll new subjects.
func (w *scepPKCSReq) Prepare(n int) ([][]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	tag := make([]byte, 4)
	if _, err := rand.Read(tag); err != nil {
		return nil, err
	}
	distinct := make([][]byte, min(n, w.messages))
	err := forEachParallel(len(distinct), func(i int) error {
		der, err := w.build(fmt.Sprintf("certgate-bench scep %x %d", tag, i), i)
		distinct[i] = der
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = distinct[i%len(distinct)]
	}
	return out, nil
}

// build returns the DER of a PKCSReq for commonName, signed with client key i modulo
// the pool size.
func (w *scepPKCSReq) build(commonName string, i int) ([]byte, error) {
	client := &w.clients[i%len(w.clients)]
	csr, err := challengeCSR(client.key, commonName, w.challenge)
	if err != nil {
		return nil, err
	}
	ids := make([]byte, 32)
	if _, err := rand.Read(ids); err != nil {
		return nil, err
	}
	m := &scep.RequestMessage{
		Type:              scep.MessagePKCSReq,
		TransactionID:     hex.EncodeToString(ids[:16]),
		SenderNonce:       ids[16:],
		Content:           csr,
		Recipient:         w.recipient,
		ContentEncryption: scepContentEncryption,
		Digest:            scepDigest,
		Signer:            client.cert,
		Key:               client.key,
	}
	return m.Marshal()
}

func (w *scepPKCSReq) NewSender() (Sender, error) { return w.httpSender, nil }

// Check verifies the CertRep's signature, that its signer is a certificate of
// GetCACert, its transactionID and recipientNonce, and that the certificate in its
// envelope certifies the requested key and is signed by a CA certificate of GetCACert.
func (w *scepPKCSReq) Check(request, response []byte) error {
	req, err := scep.ParseRequest(request, scep.LegacyAlgorithms{})
	if err != nil {
		return fmt.Errorf("the prepared request does not parse: %w", err)
	}
	var client *scepClient
	for i := range w.clients {
		if bytes.Equal(w.clients[i].cert.Raw, req.Signer.Raw) {
			client = &w.clients[i]
			break
		}
	}
	if client == nil {
		return errors.New("the prepared request is signed by no client key of this workload")
	}

	rep, err := scep.ParseCertRep(response)
	if err != nil {
		return fmt.Errorf("the CertRep does not parse: %w", err)
	}
	signer, err := rep.Verify(scepResponseLegacy)
	if err != nil {
		return fmt.Errorf("the CertRep's signature: %w", err)
	}
	if !w.isCACert(signer) {
		return fmt.Errorf("the CertRep's signer %s is not among the certificates of GetCACert", signer.Subject)
	}
	if rep.TransactionID != req.TransactionID {
		return fmt.Errorf("the CertRep's transactionID %q differs from the request's %q", rep.TransactionID, req.TransactionID)
	}
	if !bytes.Equal(rep.RecipientNonce, req.SenderNonce) {
		return errors.New("the CertRep's recipientNonce is not the request's senderNonce")
	}
	if rep.Status != scep.StatusSuccess {
		return fmt.Errorf("the CertRep's pkiStatus is %s, failInfo %s: %q", rep.Status, rep.FailInfo, rep.FailInfoText)
	}

	certs, _, err := rep.Decrypt(client.cert, client.key, scepResponseLegacy)
	if err != nil {
		return fmt.Errorf("the CertRep's envelope: %w", err)
	}
	if len(certs) == 0 {
		return errors.New("the CertRep's envelope carries no certificate")
	}
	issued := certs[0]
	if !bytes.Equal(issued.RawSubjectPublicKeyInfo, client.cert.RawSubjectPublicKeyInfo) {
		return errors.New("the issued certificate does not certify the requested key")
	}
	if !w.issuedByCA(issued) {
		return fmt.Errorf("the issued certificate (issuer %s) is not signed by a certificate of GetCACert", issued.Issuer)
	}
	w.responseAlgorithms = fmt.Sprintf("%s envelope, %s signature", rep.ContentEncryption(), rep.Digest())
	return nil
}

func (w *scepPKCSReq) isCACert(cert *x509.Certificate) bool {
	for _, ca := range w.caCerts {
		if bytes.Equal(ca.Raw, cert.Raw) {
			return true
		}
	}
	return false
}

func (w *scepPKCSReq) issuedByCA(cert *x509.Certificate) bool {
	for _, ca := range w.caCerts {
		if bytes.Equal(ca.RawSubject, cert.RawIssuer) &&
			ca.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil {
			return true
		}
	}
	return false
}

// Classify reads the pkiStatus from the signed attributes without verifying the
// signature, which Check did once for the server.
func (w *scepPKCSReq) Classify(response []byte) string {
	rep, err := scep.ParseCertRep(response)
	if err != nil {
		return "scep malformed response"
	}
	switch rep.Status {
	case scep.StatusSuccess:
		return ""
	case scep.StatusFailure:
		return "scep " + rep.FailInfo.String()
	}
	return "scep " + rep.Status.String()
}
