package scep

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
)

// The values of the operation query parameter (RFC 8894 section 4).
const (
	opGetCACaps     = "GetCACaps"
	opGetCACert     = "GetCACert"
	opGetNextCACert = "GetNextCACert"
	opPKIOperation  = "PKIOperation"
)

// Media types of the responses (RFC 8894 sections 4.2.1, 4.3 and 4.7.1).
const (
	contentTypeCACaps  = "text/plain"
	contentTypeCARA    = "application/x-x509-ca-ra-cert"
	contentTypeMessage = "application/x-pki-message"
	contentTypeNextCA  = "application/x-x509-next-ca-cert"
)

// rawQueryValue returns the value of key in a raw query string with its percent
// escapes decoded but '+' kept as '+'. url.Values decodes '+' as a space, which breaks
// the base64 of clients that leave '+' unescaped in a GET PKIOperation, such as macOS.
func rawQueryValue(rawQuery, key string) (string, bool, error) {
	for part := range strings.SplitSeq(rawQuery, "&") {
		name, value, _ := strings.Cut(part, "=")
		if name != key {
			continue
		}
		decoded, err := url.PathUnescape(value)
		if err != nil {
			return "", true, err
		}
		return decoded, true, nil
	}
	return "", false, nil
}

var errNotBase64 = errors.New("scep: the message is not base64")

// decodeBase64 decodes the message of a GET PKIOperation leniently, because clients
// depart from RFC 8894 section 4.1 in several ways. Old Cisco IOS puts line breaks
// (%0A) inside the base64, the micromdm scepclient uses the URL-safe alphabet, padding
// may be missing, and a proxy may turn '+' into a space. So CR, LF and tab are dropped,
// a space is read as '+', '-' and '_' are read as '+' and '/', and padding is optional.
func decodeBase64(text string) ([]byte, error) {
	cleaned := strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', '\t':
			return -1
		case ' ', '-':
			return '+'
		case '_':
			return '/'
		}
		return r
	}, text)
	cleaned = strings.TrimRight(cleaned, "=")
	der, err := base64.RawStdEncoding.DecodeString(cleaned)
	if err != nil {
		return nil, errNotBase64
	}
	return der, nil
}
