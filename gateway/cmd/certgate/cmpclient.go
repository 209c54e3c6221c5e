package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/cmpclient"
)

// clientFlags are the options of every "certgate cmp" subcommand.
type clientFlags struct {
	server          string
	reference       string
	secretFile      string
	certFile        string
	keyFile         string
	trustedFile     string
	newKeyFile      string
	centralKeyGen   string
	newKeyOutFile   string
	subject         string
	csrFile         string
	oldCertFile     string
	reason          int
	infoTypes       []string
	outFile         string
	implicitConfirm bool
	timeout         time.Duration
}

// infoTypeNames maps the --infotype names, as openssl cmp spells them, to OIDs.
var infoTypeNames = map[string]asn1.ObjectIdentifier{
	"caCerts":          cmp.OIDITCACerts,
	"signKeyPairTypes": cmp.OIDITSignKeyPairTypes,
	"currentCRL":       cmp.OIDITCurrentCRL,
	"crlStatusList":    cmp.OIDITCRLStatusList,
	"rootCaCert":       cmp.OIDITRootCACert,
	"certReqTemplate":  cmp.OIDITCertReqTemplate,
}

func newCMPCommand() *cobra.Command {
	flags := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "cmp",
		Short: "CMP client: ir, cr, kur, p10cr, krr, rr and genm over HTTP or raw TCP",
		Long: "CMP client. --server takes http://HOST:PORT/.well-known/cmp[/p/PROFILE], tcp://HOST:PORT\n" +
			"(RFC 2510 framing) or tcp10://HOST:PORT (version-10 framing). Protect requests with\n" +
			"--ref and --secret-file (MAC) or --cert and --key (signature).",
	}
	persistent := cmd.PersistentFlags()
	persistent.StringVar(&flags.server, "server", "http://127.0.0.1:8080/.well-known/cmp", "CMP server URL")
	persistent.StringVar(&flags.reference, "ref", "", "MAC reference, sent as senderKID")
	persistent.StringVar(&flags.secretFile, "secret-file", "", "file whose first line is the MAC secret")
	persistent.StringVar(&flags.certFile, "cert", "", "PEM protection certificate, followed by its chain")
	persistent.StringVar(&flags.keyFile, "key", "", "PEM private key of --cert")
	persistent.StringVar(&flags.trustedFile, "trusted", "", "PEM roots that signed responses must chain to")
	persistent.StringVar(&flags.outFile, "out", "", "PEM file for the certificate (for genm: the CA certificates and CRLs it received)")
	persistent.DurationVar(&flags.timeout, "timeout", 2*time.Minute, "time limit of the whole operation, polling included")

	for _, name := range []string{"ir", "cr", "kur"} {
		bodyType := map[string]cmp.BodyType{"ir": cmp.BodyIR, "cr": cmp.BodyCR, "kur": cmp.BodyKUR}[name]
		sub := &cobra.Command{
			Use:   name,
			Short: fmt.Sprintf("Enroll with %s and save the certificate", name),
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, args []string) error { return runEnroll(cmd, flags, bodyType) },
		}
		sub.Flags().StringVar(&flags.newKeyFile, "newkey", "", "PEM private key to certify (required unless --centralkeygen)")
		sub.Flags().StringVar(&flags.centralKeyGen, "centralkeygen", "", "have the server generate the key: default, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa (the profile's RSA size, else 2048 bits) or ed25519")
		sub.Flags().StringVar(&flags.newKeyOutFile, "newkeyout", "", "PEM file for the key the server generated (mode 0600; required with --centralkeygen)")
		sub.Flags().StringVar(&flags.subject, "subject", "", `subject as "/CN=device1/O=Example" (kur: default the old certificate's)`)
		sub.Flags().BoolVar(&flags.implicitConfirm, "implicit-confirm", false, "ask the server to skip certConf")
		if name == "kur" {
			sub.Flags().StringVar(&flags.oldCertFile, "oldcert", "", "certificate to update (default: --cert)")
		}
		cmd.AddCommand(sub)
	}
	p10 := &cobra.Command{
		Use: "p10cr", Short: "Enroll with a PKCS #10 request and save the certificate", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runP10(cmd, flags) },
	}
	p10.Flags().StringVar(&flags.csrFile, "csr", "", "PEM or DER PKCS #10 request (required)")
	cmd.AddCommand(p10)
	rr := &cobra.Command{
		Use: "rr", Short: "Revoke a certificate", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runRevoke(cmd, flags) },
	}
	rr.Flags().StringVar(&flags.oldCertFile, "oldcert", "", "PEM certificate to revoke (required)")
	rr.Flags().IntVar(&flags.reason, "reason", 0, "CRLReason code: 0 to 6 or 8 to 10 (6 certificateHold, 8 removeFromCRL)")
	cmd.AddCommand(rr)
	krr := &cobra.Command{
		Use: "krr", Short: "Recover the archived key of a certificate whose key the server generated", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runRecover(cmd, flags) },
	}
	krr.Flags().StringVar(&flags.oldCertFile, "oldcert", "", "PEM certificate whose key to recover (required)")
	krr.Flags().StringVar(&flags.newKeyOutFile, "newkeyout", "", "PEM file for the recovered key, mode 0600 (required)")
	cmd.AddCommand(krr)
	genm := &cobra.Command{
		Use: "genm", Short: "Ask a general message question and print the answer", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runGeneral(cmd, flags) },
	}
	genm.Flags().StringSliceVar(&flags.infoTypes, "infotype", []string{"caCerts"}, "caCerts, signKeyPairTypes, currentCRL, crlStatusList, rootCaCert or certReqTemplate")
	cmd.AddCommand(genm)
	return cmd
}

// newClient builds the client from the protection and server flags.
func newClient(flags *clientFlags) (*cmpclient.Client, error) {
	client := &cmpclient.Client{ImplicitConfirm: flags.implicitConfirm}
	server, err := url.Parse(flags.server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", flags.server, err)
	}
	switch server.Scheme {
	case "http", "https":
		client.Transport = &cmpclient.HTTPTransport{URL: flags.server}
	case "tcp":
		client.Transport = &cmpclient.TCPTransport{Address: server.Host, Framing: cmp.FramingRFC2510}
	case "tcp10":
		client.Transport = &cmpclient.TCPTransport{Address: server.Host, Framing: cmp.FramingTCPv10}
	default:
		return nil, fmt.Errorf("--server %q: use http://, tcp:// (RFC 2510 framing) or tcp10:// (version-10 framing)", flags.server)
	}
	if flags.certFile != "" && flags.trustedFile == "" {
		return nil, errors.New("--trusted is required with --cert and --key: the server signs its responses to signed requests, and they are checked against these roots (certgate-data/softca/root.crt on the embedded defaults)")
	}
	if flags.trustedFile != "" {
		client.TrustedRoots = x509.NewCertPool()
		if err := addPEMFile(client.TrustedRoots, flags.trustedFile); err != nil {
			return nil, fmt.Errorf("--trusted: %w", err)
		}
	}
	switch {
	case flags.secretFile != "":
		data, err := os.ReadFile(flags.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--secret-file: %w", err)
		}
		secret, _, _ := strings.Cut(string(data), "\n")
		if secret == "" {
			return nil, fmt.Errorf("--secret-file %s: the first line is empty", flags.secretFile)
		}
		client.MAC = &cmpclient.MACCredential{Reference: flags.reference, Secret: []byte(secret)}
	case flags.certFile != "" && flags.keyFile != "":
		credential, err := readResponder(flags.certFile, flags.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		client.Signer = &cmp.SignatureProtector{Signer: credential.Signer, Certificate: credential.Certificate, Chain: credential.Chain}
	default:
		return nil, errors.New("no protection: give --ref and --secret-file, or --cert and --key")
	}
	return client, nil
}

// withClient builds the client from flags and runs operation within the --timeout.
func withClient(cmd *cobra.Command, flags *clientFlags, operation func(context.Context, *cmpclient.Client) error) error {
	client, err := newClient(flags)
	if err != nil {
		return err
	}
	defer client.Transport.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), flags.timeout)
	defer cancel()
	return operation(ctx, client)
}

func runEnroll(cmd *cobra.Command, flags *clientFlags, bodyType cmp.BodyType) error {
	subject, err := parseSubject(flags.subject)
	if err != nil {
		return err
	}
	req := cmpclient.EnrollRequest{Type: bodyType, Subject: subject, CentralKeyType: flags.centralKeyGen}
	switch {
	case flags.centralKeyGen == "" && flags.newKeyOutFile != "":
		return errors.New("--newkeyout is only for a key that the server generates; add --centralkeygen, or leave --newkeyout out")
	case flags.centralKeyGen != "" && flags.newKeyFile != "":
		return errors.New("--newkey and --centralkeygen exclude each other: either send a key or have the server generate one")
	case flags.centralKeyGen != "" && flags.newKeyOutFile == "":
		return errors.New("--centralkeygen needs --newkeyout, the file for the generated key")
	case flags.centralKeyGen == "" && flags.newKeyFile == "":
		return errors.New("--newkey is required, or --centralkeygen with --newkeyout")
	case flags.centralKeyGen != "":
		// Checked before the request, because once the server has issued, a file that
		// cannot be written loses the key.
		if err := checkNewFile(flags.newKeyOutFile, "--newkeyout"); err != nil {
			return err
		}
	case flags.newKeyFile != "":
		keyPEM, err := os.ReadFile(flags.newKeyFile)
		if err != nil {
			return err
		}
		if req.Key, err = parsePrivateKey(keyPEM); err != nil {
			return fmt.Errorf("--newkey %s: %w", flags.newKeyFile, err)
		}
	}
	if bodyType == cmp.BodyKUR {
		oldFile := flags.oldCertFile
		if oldFile == "" {
			oldFile = flags.certFile
		}
		if req.OldCert, err = readCertificateFile(oldFile); err != nil {
			return fmt.Errorf("--oldcert: %w", err)
		}
	}
	return withClient(cmd, flags, func(ctx context.Context, client *cmpclient.Client) error {
		result, err := client.Enroll(ctx, req)
		if err != nil {
			return err
		}
		if flags.centralKeyGen != "" {
			if result.PrivateKey == nil {
				return errors.New("the server issued a certificate but returned no generated key")
			}
			if err := writePrivateKey(flags.newKeyOutFile, result.PrivateKey); err != nil {
				return err
			}
			checked := "checked against --trusted"
			if flags.trustedFile == "" {
				checked = "not checked: no --trusted"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "generated key signed by %s (%s) saved to %s\n", result.KeyGenerationAuthority.Subject, checked, flags.newKeyOutFile)
		}
		return saveResult(cmd, flags, result)
	})
}

func runP10(cmd *cobra.Command, flags *clientFlags) error {
	data, err := os.ReadFile(flags.csrFile)
	if err != nil {
		return fmt.Errorf("--csr: %w", err)
	}
	if block, _ := pem.Decode(data); block != nil {
		data = block.Bytes
	}
	return withClient(cmd, flags, func(ctx context.Context, client *cmpclient.Client) error {
		result, err := client.EnrollCSR(ctx, data)
		if err != nil {
			return err
		}
		return saveResult(cmd, flags, result)
	})
}

func saveResult(cmd *cobra.Command, flags *clientFlags, result *cmpclient.Result) error {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: result.Certificate.Raw})
	fmt.Fprintf(cmd.ErrOrStderr(), "issued %s, serial %s, status %s\n", result.Certificate.Subject, result.Certificate.SerialNumber.Text(16), result.Status.Status)
	if flags.outFile == "" {
		_, err := cmd.OutOrStdout().Write(out)
		return err
	}
	return os.WriteFile(flags.outFile, out, 0o644)
}

func runRevoke(cmd *cobra.Command, flags *clientFlags) error {
	cert, err := readCertificateFile(flags.oldCertFile)
	if err != nil {
		return fmt.Errorf("--oldcert: %w", err)
	}
	return withClient(cmd, flags, func(ctx context.Context, client *cmpclient.Client) error {
		if err := client.Revoke(ctx, cert, flags.reason); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "revocation of serial %s with reason %d accepted\n", cert.SerialNumber.Text(16), flags.reason)
		return nil
	})
}

func runRecover(cmd *cobra.Command, flags *clientFlags) error {
	if flags.newKeyOutFile == "" {
		return errors.New("--newkeyout is required: the file for the recovered key")
	}
	if err := checkNewFile(flags.newKeyOutFile, "--newkeyout"); err != nil {
		return err
	}
	cert, err := readCertificateFile(flags.oldCertFile)
	if err != nil {
		return fmt.Errorf("--oldcert: %w", err)
	}
	return withClient(cmd, flags, func(ctx context.Context, client *cmpclient.Client) error {
		key, err := client.RecoverKey(ctx, cert)
		if err != nil {
			return err
		}
		if err := writePrivateKey(flags.newKeyOutFile, key); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "key of serial %s recovered to %s\n", cert.SerialNumber.Text(16), flags.newKeyOutFile)
		return nil
	})
}

// checkNewFile reports whether path can be created: it does not exist yet and its
// folder does.
func checkNewFile(path, flag string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s %s already exists; name a new file, because a private key is never overwritten", flag, path)
	}
	if info, err := os.Stat(filepath.Dir(path)); err != nil || !info.IsDir() {
		return fmt.Errorf("%s %s: the folder %s does not exist", flag, path, filepath.Dir(path))
	}
	return nil
}

// writePrivateKey writes key as PKCS #8 PEM to a new file of mode 0600.
func writePrivateKey(path string, key crypto.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("--newkeyout: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runGeneral(cmd *cobra.Command, flags *clientFlags) error {
	var oids []asn1.ObjectIdentifier
	for _, name := range flags.infoTypes {
		oid, ok := infoTypeNames[name]
		if !ok {
			return fmt.Errorf("--infotype %q is not supported; use caCerts, signKeyPairTypes, currentCRL, crlStatusList, rootCaCert or certReqTemplate", name)
		}
		oids = append(oids, oid)
	}
	var infos []cmp.InfoTypeAndValue
	err := withClient(cmd, flags, func(ctx context.Context, client *cmpclient.Client) error {
		var err error
		infos, err = client.General(ctx, oids...)
		return err
	})
	if err != nil {
		return err
	}
	var saved bytes.Buffer
	out := cmd.OutOrStdout()
	for _, info := range infos {
		fmt.Fprintf(out, "%s (%s): %d octets\n", info.Type, infoTypeName(info.Type), len(info.Value))
		switch {
		case info.Value == nil && info.Type.Equal(cmp.OIDITRootCAKeyUpdate):
			fmt.Fprintln(out, "  no root CA update is available")
		case info.Value == nil && info.Type.Equal(cmp.OIDITCertReqTemplate):
			fmt.Fprintln(out, "  no certificate request template is required")
		case info.Type.Equal(cmp.OIDITCACerts) && info.Value != nil:
			certs, err := parseCertificateSequence(info.Value)
			if err != nil {
				return fmt.Errorf("caCerts: %w", err)
			}
			for _, cert := range certs {
				fmt.Fprintf(out, "  %s\n", cert.Subject)
				pem.Encode(&saved, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
			}
		case (info.Type.Equal(cmp.OIDITCurrentCRL) || info.Type.Equal(cmp.OIDITCRLs)) && info.Value != nil:
			crls, err := parseCRLValue(info.Type, info.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", infoTypeName(info.Type), err)
			}
			for _, crl := range crls {
				entries := fmt.Sprintf("%d entries", len(crl.RevokedCertificateEntries))
				if len(crl.RevokedCertificateEntries) == 1 {
					entries = "1 entry"
				}
				fmt.Fprintf(out, "  CRL of %s, number %s, %s, next update %s\n",
					crl.Issuer, crl.Number, entries, crl.NextUpdate.UTC().Format(time.RFC3339))
				pem.Encode(&saved, &pem.Block{Type: "X509 CRL", Bytes: crl.Raw})
			}
		}
	}
	if flags.outFile != "" && saved.Len() > 0 {
		return os.WriteFile(flags.outFile, saved.Bytes(), 0o644)
	}
	return nil
}

// infoTypeName returns the --infotype name of an InfoTypeAndValue type, or the name of
// a response type, or "" when it has none.
func infoTypeName(oid asn1.ObjectIdentifier) string {
	for name, known := range infoTypeNames {
		if known.Equal(oid) {
			return name
		}
	}
	switch {
	case oid.Equal(cmp.OIDITRootCAKeyUpdate):
		return "rootCaKeyUpdate"
	case oid.Equal(cmp.OIDITCRLs):
		return "crls"
	}
	return "unknown"
}

// parseCRLValue reads the CRLs of a currentCRL value (one CertificateList) or of a
// crls value (a SEQUENCE OF CertificateList).
func parseCRLValue(infoType asn1.ObjectIdentifier, der []byte) ([]*x509.RevocationList, error) {
	elements := [][]byte{der}
	if infoType.Equal(cmp.OIDITCRLs) {
		input := cryptobyte.String(der)
		var seq cryptobyte.String
		if !input.ReadASN1(&seq, cbasn1.SEQUENCE) {
			return nil, errors.New("not a SEQUENCE OF CertificateList")
		}
		elements = nil
		for !seq.Empty() {
			var element cryptobyte.String
			if !seq.ReadASN1Element(&element, cbasn1.SEQUENCE) {
				return nil, errors.New("invalid CRL element")
			}
			elements = append(elements, element)
		}
	}
	var crls []*x509.RevocationList
	for _, element := range elements {
		crl, err := x509.ParseRevocationList(element)
		if err != nil {
			return nil, err
		}
		crls = append(crls, crl)
	}
	return crls, nil
}

func parseCertificateSequence(der []byte) ([]*x509.Certificate, error) {
	input := cryptobyte.String(der)
	var seq cryptobyte.String
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, errors.New("not a SEQUENCE OF Certificate")
	}
	var certs []*x509.Certificate
	for !seq.Empty() {
		var element cryptobyte.String
		if !seq.ReadASN1Element(&element, cbasn1.SEQUENCE) {
			return nil, errors.New("invalid certificate element")
		}
		cert, err := x509.ParseCertificate(element)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

func readCertificateFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		data = block.Bytes
	}
	return x509.ParseCertificate(data)
}

// parseSubject reads a subject in the slash form of openssl: "/CN=device1/O=Example".
func parseSubject(text string) (pkix.Name, error) {
	var name pkix.Name
	if text == "" {
		return name, nil
	}
	if !strings.HasPrefix(text, "/") {
		return name, fmt.Errorf("--subject %q: write it as /CN=device1/O=Example", text)
	}
	for _, part := range strings.Split(text[1:], "/") {
		key, value, ok := strings.Cut(part, "=")
		if !ok || value == "" {
			return name, fmt.Errorf("--subject %q: %q is not KEY=value", text, part)
		}
		switch strings.ToUpper(key) {
		case "CN":
			name.CommonName = value
		case "O":
			name.Organization = append(name.Organization, value)
		case "OU":
			name.OrganizationalUnit = append(name.OrganizationalUnit, value)
		case "C":
			name.Country = append(name.Country, value)
		case "ST":
			name.Province = append(name.Province, value)
		case "L":
			name.Locality = append(name.Locality, value)
		case "SERIALNUMBER":
			name.SerialNumber = value
		default:
			return name, fmt.Errorf("--subject: attribute %q is not supported; use CN, O, OU, C, ST, L or serialNumber", key)
		}
	}
	return name, nil
}
