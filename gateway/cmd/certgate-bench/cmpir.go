package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/cmpclient"
)

// PasswordBasedMac parameters of the workload: OpenSSL 3.0's defaults for
// "openssl cmp -secret", which are OWF SHA-256, MAC HMAC-SHA1 and 500 iterations.
const (
	pbmOWF        = crypto.SHA256
	pbmMAC        = crypto.SHA1
	pbmIterations = 500
)

// cmpHTTPIR is the cmp-http-ir workload: an ir for one P-256 key with signature proof
// of possession, PasswordBasedMac protection and implicitConfirm, sent by HTTP POST.
// The server grants implicitConfirm, so one request is one whole enrollment and no
// certConf follows.
//
// Requests come from a pool of keys: the CertReqMsg and its proof-of-possession
// signature do not depend on the header, so each key's CertReqMsg is signed once and
// every request only gets a fresh transactionID, senderNonce and MAC. One MAC key (one
// salt) serves all requests. The server derives the key from the request's parameters
// on every request either way, so its cost is the same as with a fresh salt.
type cmpHTTPIR struct {
	url        string
	reference  []byte
	secret     []byte
	recipient  cmp.GeneralName
	checkKey   bool
	keepAlive  bool
	macKey     *cmp.MACKey
	requests   []cmpTemplate
	httpSender *httpTransport

	// tcpAddress, when set, makes this the cmp-tcp-ir workload: each client keeps one
	// TCP connection to tcpAddress and frames its requests in tcpFraming.
	tcpAddress string
	tcpFraming cmp.Framing
}

// cmpTemplate is one key's part of a request: everything but the header.
type cmpTemplate struct {
	sender cmp.GeneralName
	body   cmp.Body
}

// registerCMPHTTPIR defines the flags of both CMP workloads; cmp-tcp-ir reads them too.
func registerCMPHTTPIR(fs *flag.FlagSet) func() (Workload, error) {
	fs.String("url", "http://127.0.0.1:8080/.well-known/cmp", "CMP over HTTP URL of the server")
	fs.String("ref", "default", "senderKID: the reference of the MAC secret")
	fs.String("secret-file", "", "file with the MAC secret (required for cmp-http-ir and cmp-tcp-ir)")
	fs.String("recipient", "certgate", "common name of the recipient in the request header")
	fs.Int("keys", 64, "number of distinct P-256 keys that the requests use in turn")
	fs.Bool("check-key", true, "require the certificate of the checked exchange to certify the requested key; turn off for servers that return a fixed certificate")
	fs.Bool("keep-alive", true, "keep each client's connection open between requests; turn off for servers that close it after each response")
	return func() (Workload, error) { return cmpIRFromFlags(fs) }
}

// registerCMPTCPIR defines the TCP flags of cmp-tcp-ir, which sends the requests of
// cmp-http-ir over CMP's TCP transfer.
func registerCMPTCPIR(fs *flag.FlagSet) func() (Workload, error) {
	address := fs.String("tcp-address", "127.0.0.1:829", "host:port of the server's CMP over TCP listener (cmp-tcp-ir)")
	framing := fs.String("framing", "tcp-v10", "TCP framing of cmp-tcp-ir: tcp-v10 or rfc2510")
	return func() (Workload, error) {
		w, err := cmpIRFromFlags(fs)
		if err != nil {
			return nil, err
		}
		switch *framing {
		case "tcp-v10":
			w.tcpFraming = cmp.FramingTCPv10
		case "rfc2510":
			w.tcpFraming = cmp.FramingRFC2510
		default:
			return nil, fmt.Errorf("-framing %q: use tcp-v10 or rfc2510", *framing)
		}
		w.tcpAddress = *address
		return w, nil
	}
}

// cmpIRFromFlags builds the CMP ir workload from the flags that registerCMPHTTPIR
// defined, after parsing.
func cmpIRFromFlags(fs *flag.FlagSet) (*cmpHTTPIR, error) {
	value := func(name string) string { return fs.Lookup(name).Value.String() }
	secret, err := readSecret(value("secret-file"), "-secret-file", "the MAC secret")
	if err != nil {
		return nil, err
	}
	keys, err := strconv.Atoi(value("keys"))
	if err != nil || keys < 1 {
		return nil, fmt.Errorf("-keys must be at least 1, got %s", value("keys"))
	}
	return newCMPHTTPIR(value("url"), value("ref"), secret, value("recipient"), keys,
		value("check-key") == "true", value("keep-alive") == "true")
}

func newCMPHTTPIR(url, reference string, secret []byte, recipient string, keys int, checkKey, keepAlive bool) (*cmpHTTPIR, error) {
	recipientName, err := rawName(recipient)
	if err != nil {
		return nil, err
	}
	macKey, err := cmp.NewPBMKey(secret, pbmOWF, pbmMAC, pbmIterations)
	if err != nil {
		return nil, err
	}
	w := &cmpHTTPIR{
		url:        url,
		reference:  []byte(reference),
		secret:     secret,
		recipient:  cmp.DirectoryNameOf(recipientName),
		checkKey:   checkKey,
		keepAlive:  keepAlive,
		macKey:     macKey,
		httpSender: newHTTPTransport(url, "application/pkixcmp", keepAlive),
	}
	for i := range keys {
		template, err := newCMPTemplate(fmt.Sprintf("certgate-bench %d", i))
		if err != nil {
			return nil, err
		}
		w.requests = append(w.requests, template)
	}
	return w, nil
}

func rawName(commonName string) ([]byte, error) {
	return asn1.Marshal(pkix.Name{CommonName: commonName}.ToRDNSequence())
}

// newCMPTemplate generates a P-256 key and the signed CertReqMsg that requests a
// certificate for it.
func newCMPTemplate(commonName string) (cmpTemplate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cmpTemplate{}, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return cmpTemplate{}, err
	}
	subject, err := rawName(commonName)
	if err != nil {
		return cmpTemplate{}, err
	}
	crm := cmp.CertReqMsg{CertReqID: 0, Template: cmp.CertTemplate{RawSubject: subject, RawPublicKey: spki}}
	crm.RawCertReq, err = crm.EncodeCertRequest()
	if err != nil {
		return cmpTemplate{}, err
	}
	algorithm, hash, err := cmp.SignatureAlgorithmFor(key.Public())
	if err != nil {
		return cmpTemplate{}, err
	}
	signature, err := cmp.Sign(key, hash, crm.RawCertReq)
	if err != nil {
		return cmpTemplate{}, err
	}
	crm.POP = &cmp.ProofOfPossession{Type: cmp.POPSignature, Algorithm: algorithm, Signature: signature}
	return cmpTemplate{
		sender: cmp.DirectoryNameOf(subject),
		body:   cmp.Body{Type: cmp.BodyIR, CertReqs: []cmp.CertReqMsg{crm}},
	}, nil
}

func (w *cmpHTTPIR) Describe() string {
	transfer := "HTTP with keep-alive"
	switch {
	case w.tcpAddress != "":
		transfer = fmt.Sprintf("TCP in the %s framing, one connection per client", w.tcpFraming)
	case !w.keepAlive:
		transfer = "HTTP with a new connection per request"
	}
	return fmt.Sprintf("CMP ir over %s, PasswordBasedMac (OWF SHA-256, HMAC-SHA1, %d iterations), P-256 key, implicitConfirm granted, so one request is one enrollment",
		transfer, pbmIterations)
}

// Prepare builds n requests on all cores.
func (w *cmpHTTPIR) Prepare(n int) ([][]byte, error) {
	out := make([][]byte, n)
	err := forEachParallel(n, func(i int) error {
		der, err := w.build(i)
		out[i] = der
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// build returns the DER of request i, which uses key i modulo the pool size.
func (w *cmpHTTPIR) build(i int) ([]byte, error) {
	template := &w.requests[i%len(w.requests)]
	ids := make([]byte, 32)
	if _, err := rand.Read(ids); err != nil {
		return nil, err
	}
	m := &cmp.Message{
		Header: cmp.Header{
			PVNO:          cmp.PVNO2000,
			Sender:        template.sender,
			Recipient:     w.recipient,
			MessageTime:   time.Now(),
			SenderKID:     w.reference,
			TransactionID: ids[:16],
			SenderNonce:   ids[16:],
			GeneralInfo:   []cmp.InfoTypeAndValue{{Type: cmp.OIDITImplicitConfirm, Value: []byte{0x05, 0x00}}},
		},
		Body: template.body,
	}
	return w.macKey.Protect(m)
}

func (w *cmpHTTPIR) NewSender() (Sender, error) {
	if w.tcpAddress != "" {
		return &tcpSender{transport: &cmpclient.TCPTransport{Address: w.tcpAddress, Framing: w.tcpFraming}}, nil
	}
	return w.httpSender, nil
}

// tcpSender sends one client's requests over its own TCP connection, with the framing
// and the transport-level polling of certgate's CMP client.
type tcpSender struct {
	transport *cmpclient.TCPTransport
}

func (s *tcpSender) Send(ctx context.Context, request []byte) ([]byte, error) {
	response, err := s.transport.Exchange(ctx, request)
	if err != nil {
		return nil, &exchangeError{kind: transportKind(err), err: err}
	}
	return response, nil
}

func (s *tcpSender) Close() error { return s.transport.Close() }

// Check parses the response in full and verifies its MAC, header and certificate.
func (w *cmpHTTPIR) Check(request, response []byte) error {
	req, err := cmp.ParseMessage(request)
	if err != nil {
		return fmt.Errorf("the prepared request does not parse: %w", err)
	}
	resp, err := cmp.ParseMessage(response)
	if err != nil {
		return fmt.Errorf("the response does not parse: %w", err)
	}
	if !cmp.IsMACAlgorithm(resp.Header.ProtectionAlg) {
		return errors.New("the response is not MAC-protected")
	}
	key, err := cmp.DeriveMACKey(*resp.Header.ProtectionAlg, w.secret)
	if err != nil {
		return fmt.Errorf("the response's MAC parameters: %w", err)
	}
	if err := key.Verify(resp); err != nil {
		return fmt.Errorf("the response's MAC: %w", err)
	}
	if !bytes.Equal(resp.Header.TransactionID, req.Header.TransactionID) {
		return errors.New("the response's transactionID differs from the request's")
	}
	if !bytes.Equal(resp.Header.RecipNonce, req.Header.SenderNonce) {
		return errors.New("the response's recipNonce is not the request's senderNonce")
	}
	if resp.Body.Type == cmp.BodyError {
		return fmt.Errorf("the server returned an error message: %s", resp.Body.Error.Status)
	}
	if resp.Body.Type != cmp.BodyIP || len(resp.Body.CertRep.Responses) != 1 {
		return fmt.Errorf("the response is %s, expected an ip with one CertResponse", resp.Body.Type)
	}
	certResponse := resp.Body.CertRep.Responses[0]
	if s := certResponse.Status.Status; s != cmp.StatusAccepted && s != cmp.StatusGrantedWithMods {
		return fmt.Errorf("the CertResponse status is %s", certResponse.Status)
	}
	if certResponse.Certificate == nil {
		return errors.New("the ip carries no certificate")
	}
	if !resp.Header.HasImplicitConfirm() {
		return errors.New("the server did not grant implicitConfirm, so each enrollment would need a certConf")
	}
	if w.checkKey && !bytes.Equal(certResponse.Certificate.RawSubjectPublicKeyInfo, req.Body.CertReqs[0].Template.RawPublicKey) {
		return errors.New("the issued certificate does not certify the requested key")
	}
	return nil
}

// Classify walks the DER down to the first CertResponse's status, which costs far less
// than a full parse. Only responses that are not a successful ip are parsed in full,
// to name their failInfo.
func (w *cmpHTTPIR) Classify(response []byte) string {
	if ok := ipAccepted(response); ok {
		return ""
	}
	m, err := cmp.ParseMessage(response)
	if err != nil {
		return "cmp malformed response"
	}
	switch m.Body.Type {
	case cmp.BodyError:
		return "cmp " + failureKind(m.Body.Error.Status)
	case cmp.BodyIP:
		if len(m.Body.CertRep.Responses) == 0 {
			return "cmp ip without CertResponse"
		}
		return "cmp " + failureKind(m.Body.CertRep.Responses[0].Status)
	}
	return "cmp unexpected " + m.Body.Type.String()
}

func failureKind(status cmp.StatusInfo) string {
	if status.FailInfo != 0 {
		return status.FailInfo.String()
	}
	return status.Status.String()
}

// ipAccepted reports whether der is a PKIMessage whose body is an ip whose first
// CertResponse has status accepted or grantedWithMods.
//
//	PKIMessage ::= SEQUENCE { header, body [1] CertRepMessage, ... }
//	CertRepMessage ::= SEQUENCE { caPubs [1] ... OPTIONAL, response SEQUENCE OF CertResponse }
//	CertResponse ::= SEQUENCE { certReqId INTEGER, status PKIStatusInfo, ... }
func ipAccepted(der []byte) bool {
	input := cryptobyte.String(der)
	var message, body, repMessage, responses, first, statusInfo cryptobyte.String
	var certReqID, status int64
	ok := input.ReadASN1(&message, cbasn1.SEQUENCE) &&
		message.SkipASN1(cbasn1.SEQUENCE) &&
		message.ReadASN1(&body, cbasn1.Tag(1).Constructed().ContextSpecific()) &&
		body.ReadASN1(&repMessage, cbasn1.SEQUENCE) &&
		repMessage.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) &&
		repMessage.ReadASN1(&responses, cbasn1.SEQUENCE) &&
		responses.ReadASN1(&first, cbasn1.SEQUENCE) &&
		first.ReadASN1Integer(&certReqID) &&
		first.ReadASN1(&statusInfo, cbasn1.SEQUENCE) &&
		statusInfo.ReadASN1Integer(&status)
	return ok && (status == int64(cmp.StatusAccepted) || status == int64(cmp.StatusGrantedWithMods))
}
