package gateway

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"sort"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/gateway/cmp"
)

// keyTypeAlgorithms maps the key types of a profile to the AlgorithmIdentifiers that
// signKeyPairTypes lists (RFC 9483 section 4.3: a SEQUENCE OF AlgorithmIdentifier).
var keyTypeAlgorithms = map[string]pkix.AlgorithmIdentifier{
	"ecdsa-p256": {Algorithm: cmp.OIDPublicKeyECDSA, Parameters: oidParameter(cmp.OIDNamedCurveP256)},
	"ecdsa-p384": {Algorithm: cmp.OIDPublicKeyECDSA, Parameters: oidParameter(cmp.OIDNamedCurveP384)},
	"ecdsa-p521": {Algorithm: cmp.OIDPublicKeyECDSA, Parameters: oidParameter(cmp.OIDNamedCurveP521)},
	"rsa-2048":   {Algorithm: cmp.OIDPublicKeyRSA, Parameters: asn1.NullRawValue},
	"rsa-3072":   {Algorithm: cmp.OIDPublicKeyRSA, Parameters: asn1.NullRawValue},
	"rsa-4096":   {Algorithm: cmp.OIDPublicKeyRSA, Parameters: asn1.NullRawValue},
	"ed25519":    {Algorithm: cmp.OIDEd25519},
}

func oidParameter(oid asn1.ObjectIdentifier) asn1.RawValue {
	der, _ := asn1.Marshal(oid)
	return asn1.RawValue{FullBytes: der}
}

// general responds to genm (RFC 9483 section 4.3) entry by entry. Unknown infoTypes are
// echoed with no value, which RFC 9810 section 5.3.19 permits ("MAY ignore").
func (r *Router) general(ctx context.Context, req *request) (*cmp.Body, error) {
	var infos []cmp.InfoTypeAndValue
	for _, info := range req.msg.Body.Infos {
		switch {
		case info.Type.Equal(cmp.OIDITCACerts):
			chain, err := req.profile.Backend.CAChain(ctx)
			if err != nil {
				return nil, err
			}
			infos = append(infos, cmp.InfoTypeAndValue{Type: info.Type, Value: certificateSequence(chain)})
		case info.Type.Equal(cmp.OIDITSignKeyPairTypes):
			infos = append(infos, cmp.InfoTypeAndValue{Type: info.Type, Value: r.signKeyPairTypes(req.profile)})
		case info.Type.Equal(cmp.OIDITCurrentCRL):
			crl, err := req.profile.Backend.CRL(ctx)
			if err != nil {
				return nil, err
			}
			infos = append(infos, cmp.InfoTypeAndValue{Type: info.Type, Value: crl})
		case info.Type.Equal(cmp.OIDITCRLStatusList):
			crl, err := req.profile.Backend.CRL(ctx)
			if err != nil {
				return nil, err
			}
			var b cryptobyte.Builder
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(crl) })
			infos = append(infos, cmp.InfoTypeAndValue{Type: cmp.OIDITCRLs, Value: b.BytesOrPanic()})
		case info.Type.Equal(cmp.OIDITRootCACert):
			// RFC 9483 section 4.3.2: no value means no root CA key update is available.
			infos = append(infos, cmp.InfoTypeAndValue{Type: cmp.OIDITRootCAKeyUpdate})
		default:
			// certReqTemplate without a value means no template is required (RFC 9483
			// section 4.3.3); other types are echoed the same way.
			infos = append(infos, cmp.InfoTypeAndValue{Type: info.Type})
		}
	}
	return &cmp.Body{Type: cmp.BodyGenP, Infos: infos}, nil
}

func (r *Router) signKeyPairTypes(profile *Profile) []byte {
	names := make([]string, 0, len(profile.KeyTypes))
	for name := range profile.KeyTypes {
		names = append(names, name)
	}
	sort.Strings(names)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		seen := map[string]bool{}
		for _, name := range names {
			alg, ok := keyTypeAlgorithms[name]
			if !ok {
				continue
			}
			der, err := asn1.Marshal(alg)
			if err != nil || seen[string(der)] {
				continue
			}
			seen[string(der)] = true
			b.AddBytes(der)
		}
	})
	return b.BytesOrPanic()
}

func certificateSequence(chain []*x509.Certificate) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, cert := range chain {
			b.AddBytes(cert.Raw)
		}
	})
	return b.BytesOrPanic()
}
