package softca

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/certgate/certgate/plugins/sdk"
)

// revocationsFileVersion is the format version of revocations.json.
const revocationsFileVersion = 1

// oidInvalidityDate is the invalidityDate CRL entry extension, id-ce 24 (RFC 5280
// section 5.3.2).
var oidInvalidityDate = asn1.ObjectIdentifier{2, 5, 29, 24}

// revocationsJSON is the content of revocations.json.
type revocationsJSON struct {
	Version          int            `json:"version"`
	IssuerSPKISHA256 string         `json:"issuer_spki_sha256"` // binds the file to one CA key
	CRLNumber        uint64         `json:"crl_number"`         // the last CRL number used
	Revoked          []revokedEntry `json:"revoked"`
}

// revokedEntry is one revoked or held certificate.
type revokedEntry struct {
	Serial         string     `json:"serial"`     // lowercase hexadecimal
	Reason         int        `json:"reason"`     // RFC 5280 CRLReason code, or -1 when none was given
	RevokedAt      time.Time  `json:"revoked_at"` // the revocationDate of the CRL entry
	InvalidityDate *time.Time `json:"invalidity_date,omitempty"`
}

// revocations is the revocation state of the issuing CA, persisted in
// revocations.json with an atomic rewrite on every change. Revocations are rare next
// to issuance, so rewriting the whole file is cheap enough.
//
// NOTE: entries are never removed, even after the certificate expired, because softca
// records serial numbers but not expiry dates.
type revocations struct {
	path     string
	spkiHash string

	mu         sync.Mutex // guards the fields below
	crlNumber  uint64
	entries    map[string]revokedEntry // by Serial
	generation uint64                  // counts changes of entries

	// The last CRL, reused until the entries change or half its validity has passed.
	// Each new CRL costs a CRL number and a file write, and a CRL distribution point is
	// fetched far more often than certificates are revoked.
	crlDER        []byte
	crlGeneration uint64
	crlThisUpdate time.Time
}

// openRevocations reads path, or starts an empty state when it does not exist.
func openRevocations(path string, spkiHash [sha256.Size]byte) (*revocations, error) {
	r := &revocations{
		path:     path,
		spkiHash: hex.EncodeToString(spkiHash[:]),
		entries:  make(map[string]revokedEntry),
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}

	var file revocationsJSON
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case file.Version != revocationsFileVersion:
		return nil, fmt.Errorf("%s has format version %d; this softca reads version %d", path, file.Version, revocationsFileVersion)
	case file.IssuerSPKISHA256 != r.spkiHash:
		return nil, fmt.Errorf("%s belongs to the CA key with SPKI SHA-256 %s, not to the configured CA (%s)", path, file.IssuerSPKISHA256, r.spkiHash)
	}
	r.crlNumber = file.CRLNumber
	for _, e := range file.Revoked {
		if _, ok := new(big.Int).SetString(e.Serial, 16); !ok {
			return nil, fmt.Errorf("%s: invalid serial number %q", path, e.Serial)
		}
		r.entries[e.Serial] = e
	}
	return r, nil
}

// save writes the state. The caller holds mu.
func (r *revocations) save() error {
	file := revocationsJSON{
		Version:          revocationsFileVersion,
		IssuerSPKISHA256: r.spkiHash,
		CRLNumber:        r.crlNumber,
		Revoked:          r.sortedEntries(),
	}
	data, err := json.MarshalIndent(&file, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(r.path, append(data, '\n'), 0o600)
}

// sortedEntries returns the entries in ascending serial order. The caller holds mu.
func (r *revocations) sortedEntries() []revokedEntry {
	list := make([]revokedEntry, 0, len(r.entries))
	for _, e := range r.entries {
		list = append(list, e)
	}
	// Lowercase hexadecimal without leading zeros sorts numerically by length, then text.
	slices.SortFunc(list, func(a, b revokedEntry) int {
		return cmp.Or(cmp.Compare(len(a.Serial), len(b.Serial)), cmp.Compare(a.Serial, b.Serial))
	})
	return list
}

// validReasons are the reasons Revoke accepts.
var validReasons = map[sdk.RevocationReason]bool{
	sdk.ReasonNone: true, sdk.ReasonUnspecified: true, sdk.ReasonKeyCompromise: true,
	sdk.ReasonCACompromise: true, sdk.ReasonAffiliationChanged: true, sdk.ReasonSuperseded: true,
	sdk.ReasonCessationOfOperation: true, sdk.ReasonCertificateHold: true, sdk.ReasonRemoveFromCRL: true,
	sdk.ReasonPrivilegeWithdrawn: true, sdk.ReasonAACompromise: true,
}

// revoke applies one revocation request to a serial that the CA issued:
//   - removeFromCRL releases a held certificate and is a bad request otherwise;
//   - a held certificate may be revoked for good with any other reason, and keeps its
//     original revocation date, from which on relying parties already distrusted it;
//   - anything else on a certificate with an entry is CategoryAlreadyRevoked.
func (r *revocations) revoke(serial *big.Int, reason sdk.RevocationReason, invalidity, now time.Time) error {
	key := serial.Text(16)
	r.mu.Lock()
	defer r.mu.Unlock()

	old, exists := r.entries[key]
	onHold := exists && old.Reason == int(sdk.ReasonCertificateHold)
	switch {
	case reason == sdk.ReasonRemoveFromCRL && !exists:
		return sdk.Errorf(sdk.CategoryBadRequest, "certificate %s is not on hold, so removeFromCRL does not apply", key)
	case reason == sdk.ReasonRemoveFromCRL && !onHold:
		return sdk.Errorf(sdk.CategoryBadRequest, "certificate %s is revoked for good (%s) and cannot be released", key, sdk.RevocationReason(old.Reason))
	case reason == sdk.ReasonRemoveFromCRL:
		delete(r.entries, key)
	case exists && (!onHold || reason == sdk.ReasonCertificateHold):
		return sdk.Errorf(sdk.CategoryAlreadyRevoked, "certificate %s is already revoked (%s)", key, sdk.RevocationReason(old.Reason))
	default:
		entry := revokedEntry{Serial: key, Reason: int(reason), RevokedAt: now.UTC().Truncate(time.Second)}
		if onHold {
			entry.RevokedAt = old.RevokedAt
		}
		if !invalidity.IsZero() {
			t := invalidity.UTC().Truncate(time.Second)
			entry.InvalidityDate = &t
		}
		r.entries[key] = entry
	}

	if err := r.save(); err != nil {
		// Restore the previous state, so memory never claims what the disk lacks.
		if exists {
			r.entries[key] = old
		} else {
			delete(r.entries, key)
		}
		return &sdk.Error{Category: sdk.CategoryInternal, Detail: "the revocation could not be stored", Err: err}
	}
	r.generation++
	return nil
}

// crl returns the CA's CRL, signing a new one when the entries changed or half of the
// last one's validity has passed.
func (r *revocations) crl(auth *authority, validity time.Duration, now time.Time) ([]byte, error) {
	if auth.cert.KeyUsage != 0 && auth.cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, sdk.Errorf(sdk.CategoryUnsupported, "the issuing CA certificate lacks the cRLSign key usage, so it cannot sign CRLs")
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.crlDER != nil && r.crlGeneration == r.generation && now.Before(r.crlThisUpdate.Add(validity/2)) {
		return r.crlDER, nil
	}

	// Store the new number before the CRL leaves the process, so that no number is
	// ever used twice, even across a crash.
	r.crlNumber++
	if err := r.save(); err != nil {
		r.crlNumber--
		return nil, &sdk.Error{Category: sdk.CategoryInternal, Detail: "the CRL number could not be stored", Err: err}
	}

	entries := r.sortedEntries()
	list := make([]x509.RevocationListEntry, 0, len(entries))
	for _, e := range entries {
		serial, _ := new(big.Int).SetString(e.Serial, 16) // checked when loaded or added
		item := x509.RevocationListEntry{SerialNumber: serial, RevocationTime: e.RevokedAt}
		if e.Reason > 0 {
			// Zero and "none" both leave reasonCode out, as RFC 5280 section 5.3.1
			// recommends over writing unspecified (0).
			item.ReasonCode = e.Reason
		}
		if e.InvalidityDate != nil {
			value, err := asn1.MarshalWithParams(*e.InvalidityDate, "generalized")
			if err != nil {
				return nil, &sdk.Error{Category: sdk.CategoryInternal, Detail: "the CRL could not be created", Err: err}
			}
			item.ExtraExtensions = []pkix.Extension{{Id: oidInvalidityDate, Value: value}}
		}
		list = append(list, item)
	}

	thisUpdate := now.UTC().Truncate(time.Second)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    new(big.Int).SetUint64(r.crlNumber),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(validity),
		RevokedCertificateEntries: list,
	}, auth.cert, auth.signer)
	if err != nil {
		return nil, &sdk.Error{Category: sdk.CategoryInternal, Detail: "the CRL could not be created", Err: err}
	}
	r.crlDER = der
	r.crlGeneration = r.generation
	r.crlThisUpdate = thisUpdate
	return der, nil
}
