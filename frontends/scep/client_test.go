package scep

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// testClient builds SCEP requests in Go, for the cases no real client produces: GET
// encodings, CertPoll, GetCert, GetCRL and broken messages. The real clients in
// strongswan_test.go and micromdm_test.go check the codec against other code.
type testClient struct {
	t    *testing.T
	key  *rsa.PrivateKey
	cert *x509.Certificate // self-signed, or set to an issued certificate for renewal
}

func newTestClient(t *testing.T, cn string) *testClient {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testClient{t: t, key: key, cert: cert}
}

// csr returns a PKCS #10 request of the client's key, with a challenge password when
// challenge is not empty.
func (c *testClient) csr(cn, challenge string) []byte {
	c.t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, c.key)
	if err != nil {
		c.t.Fatal(err)
	}
	if challenge == "" {
		return der
	}
	value, _ := asn1.Marshal(challenge)
	return addChallenge(c.t, der, value, c.key)
}

// addChallenge rebuilds a CSR with a challengePassword attribute and signs it again,
// because crypto/x509 cannot write that attribute.
func addChallenge(t *testing.T, der, value []byte, key *rsa.PrivateKey) []byte {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddBytes(csr.RawSubject)
		b.AddBytes(csr.RawSubjectPublicKeyInfo)
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidChallengePassword)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(value) })
			})
		})
	})
	tbs := b.BytesOrPanic()
	h := digestSHA256.hash.New()
	h.Write(tbs)
	signature, err := key.Sign(rand.Reader, h.Sum(nil), digestSHA256.hash)
	if err != nil {
		t.Fatal(err)
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		addAlgorithm(b, oidSHA256WithRSA, true)
		b.AddASN1BitString(signature)
	})
	return out.BytesOrPanic()
}

// message builds a pkiMessage of type mt that carries content encrypted to ra.
func (c *testClient) message(ra *x509.Certificate, mt MessageType, transactionID string, content []byte, cipher *contentCipher, digest *digestAlgorithm) []byte {
	c.t.Helper()
	envelope, err := encryptEnvelope(content, ra, cipher)
	if err != nil {
		c.t.Fatal(err)
	}
	attrs := []attribute{
		{oidTransactionID, printableString(transactionID)},
		{oidMessageType, printableString(strconv.Itoa(int(mt)))},
		{oidSenderNonce, octetString(randomBytes(nonceSize))},
	}
	der, err := signSignedData(envelope, attrs, c.cert, c.key, digest, []*x509.Certificate{c.cert})
	if err != nil {
		c.t.Fatal(err)
	}
	return der
}

// reply is a decoded CertRep.
type reply struct {
	status       PKIStatus
	failInfo     string
	failInfoText string
	certificates []*x509.Certificate
	crls         [][]byte
}

// post sends a pkiMessage by POST and decodes the CertRep.
func (c *testClient) post(url string, der []byte) *reply {
	c.t.Helper()
	resp, err := http.Post(url+"?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(der))
	if err != nil {
		c.t.Fatal(err)
	}
	return c.readReply(resp)
}

// get sends a pkiMessage by GET with the message already encoded for the query.
func (c *testClient) get(base, encodedMessage string) *reply {
	c.t.Helper()
	resp, err := http.Get(base + "?operation=PKIOperation&message=" + encodedMessage)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.readReply(resp)
}

func (c *testClient) readReply(resp *http.Response) *reply {
	c.t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentTypeMessage {
		c.t.Errorf("Content-Type = %q, want %q", ct, contentTypeMessage)
	}
	sd, err := parseSignedData(body)
	if err != nil {
		c.t.Fatalf("the CertRep does not decode: %v", err)
	}
	if _, _, err := sd.verify(LegacyAlgorithms{}); err != nil {
		c.t.Fatalf("the CertRep signature does not verify: %v", err)
	}
	si := &sd.signer
	out := &reply{}
	status, err := si.stringValue(oidPKIStatus, "pkiStatus")
	if err != nil {
		c.t.Fatal(err)
	}
	n, _ := strconv.Atoi(status)
	out.status = PKIStatus(n)
	if out.status == StatusFailure {
		info, err := si.stringValue(oidFailInfo, "failInfo")
		if err != nil {
			c.t.Fatal(err)
		}
		n, _ := strconv.Atoi(info)
		out.failInfo = FailInfo(n).String()
		if text, ok, _ := si.singleValue(oidFailInfoText, "failInfoText"); ok {
			input := cryptobyte.String(text)
			var s cryptobyte.String
			input.ReadASN1(&s, cbasn1.UTF8String)
			out.failInfoText = string(s)
		}
	}
	if out.status != StatusSuccess {
		return out
	}
	env, err := parseEnvelope(sd.content)
	if err != nil {
		c.t.Fatal(err)
	}
	degenerate, _, err := env.decrypt(c.cert, c.key, allLegacy)
	if err != nil {
		c.t.Fatalf("the CertRep envelope does not decrypt: %v", err)
	}
	out.certificates, out.crls = parseDegenerate(c.t, degenerate)
	return out
}

// parseDegenerate returns the certificates and CRLs of a certs-only SignedData.
func parseDegenerate(t *testing.T, der []byte) ([]*x509.Certificate, [][]byte) {
	t.Helper()
	contentType, content, err := readContentInfo(der)
	if err != nil || !contentType.Equal(oidSignedData) {
		t.Fatalf("not a SignedData: %v", err)
	}
	var sd, certs, crls cryptobyte.String
	if !content.ReadASN1(&sd, cbasn1.SEQUENCE) || !sd.SkipASN1(cbasn1.INTEGER) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) {
		t.Fatal("malformed degenerate SignedData")
	}
	var list []*x509.Certificate
	if sd.PeekASN1Tag(tagContext0) {
		sd.ReadASN1(&certs, tagContext0)
		if list, err = parseCertificateSet(certs); err != nil {
			t.Fatal(err)
		}
	}
	var crlList [][]byte
	if sd.PeekASN1Tag(tagContext1) {
		sd.ReadASN1(&crls, tagContext1)
		for !crls.Empty() {
			var crl cryptobyte.String
			crls.ReadASN1Element(&crl, cbasn1.SEQUENCE)
			crlList = append(crlList, crl)
		}
	}
	return list, crlList
}

// queryEscapeStrict returns the base64 of der escaped by url.QueryEscape, the form
// that RFC 8894 section 4.1 requires.
func queryEscapeStrict(der []byte) string {
	return url.QueryEscape(base64.StdEncoding.EncodeToString(der))
}

// marshalIssuerAndSerial encodes the content of GetCert and GetCRL.
func marshalIssuerAndSerial(issuer []byte, serial *big.Int) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(issuer)
		b.AddASN1BigInt(serial)
	})
	return b.BytesOrPanic()
}

// marshalIssuerAndSubject encodes the content of CertPoll.
func marshalIssuerAndSubject(issuer, subject []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(issuer)
		b.AddBytes(subject)
	})
	return b.BytesOrPanic()
}
