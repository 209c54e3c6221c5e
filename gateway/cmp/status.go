package cmp

import (
	"fmt"
	"math/bits"
	"strings"
)

// PKIStatus of RFC 9810 section 5.2.3.
type PKIStatus int

// The PKIStatus values.
const (
	StatusAccepted               PKIStatus = 0
	StatusGrantedWithMods        PKIStatus = 1
	StatusRejection              PKIStatus = 2
	StatusWaiting                PKIStatus = 3
	StatusRevocationWarning      PKIStatus = 4
	StatusRevocationNotification PKIStatus = 5
	StatusKeyUpdateWarning       PKIStatus = 6
)

var statusNames = [...]string{
	StatusAccepted:               "accepted",
	StatusGrantedWithMods:        "grantedWithMods",
	StatusRejection:              "rejection",
	StatusWaiting:                "waiting",
	StatusRevocationWarning:      "revocationWarning",
	StatusRevocationNotification: "revocationNotification",
	StatusKeyUpdateWarning:       "keyUpdateWarning",
}

func (s PKIStatus) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("PKIStatus(%d)", int(s))
}

// FailureInfo is the PKIFailureInfo BIT STRING of RFC 9810 section 5.2.3, bit n stored as
// 1<<n.
type FailureInfo uint32

// The PKIFailureInfo bits.
const (
	FailBadAlg              FailureInfo = 1 << 0
	FailBadMessageCheck     FailureInfo = 1 << 1
	FailBadRequest          FailureInfo = 1 << 2
	FailBadTime             FailureInfo = 1 << 3
	FailBadCertID           FailureInfo = 1 << 4
	FailBadDataFormat       FailureInfo = 1 << 5
	FailWrongAuthority      FailureInfo = 1 << 6
	FailIncorrectData       FailureInfo = 1 << 7
	FailMissingTimeStamp    FailureInfo = 1 << 8
	FailBadPOP              FailureInfo = 1 << 9
	FailCertRevoked         FailureInfo = 1 << 10
	FailCertConfirmed       FailureInfo = 1 << 11
	FailWrongIntegrity      FailureInfo = 1 << 12
	FailBadRecipientNonce   FailureInfo = 1 << 13
	FailTimeNotAvailable    FailureInfo = 1 << 14
	FailUnacceptedPolicy    FailureInfo = 1 << 15
	FailUnacceptedExtension FailureInfo = 1 << 16
	FailAddInfoNotAvailable FailureInfo = 1 << 17
	FailBadSenderNonce      FailureInfo = 1 << 18
	FailBadCertTemplate     FailureInfo = 1 << 19
	FailSignerNotTrusted    FailureInfo = 1 << 20
	FailTransactionIDInUse  FailureInfo = 1 << 21
	FailUnsupportedVersion  FailureInfo = 1 << 22
	FailNotAuthorized       FailureInfo = 1 << 23
	FailSystemUnavail       FailureInfo = 1 << 24
	FailSystemFailure       FailureInfo = 1 << 25
	FailDuplicateCertReq    FailureInfo = 1 << 26
	failureInfoBits                     = 27
	failureInfoAllBits      FailureInfo = 1<<failureInfoBits - 1
)

var failureNames = [failureInfoBits]string{
	"badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId", "badDataFormat",
	"wrongAuthority", "incorrectData", "missingTimeStamp", "badPOP", "certRevoked",
	"certConfirmed", "wrongIntegrity", "badRecipientNonce", "timeNotAvailable",
	"unacceptedPolicy", "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
	"badCertTemplate", "signerNotTrusted", "transactionIdInUse", "unsupportedVersion",
	"notAuthorized", "systemUnavail", "systemFailure", "duplicateCertReq",
}

// String lists the names of the set bits, joined by "|".
func (f FailureInfo) String() string {
	if f == 0 {
		return "none"
	}
	var names []string
	for bit := 0; bit < 32; bit++ {
		if f&(1<<bit) == 0 {
			continue
		}
		if bit < failureInfoBits {
			names = append(names, failureNames[bit])
		} else {
			names = append(names, fmt.Sprintf("bit%d", bit))
		}
	}
	return strings.Join(names, "|")
}

// bitString returns the DER contents of the BIT STRING: the unused-bits octet followed by
// the named bits with trailing zero bits removed, as DER requires for named bit lists
// (X.690 section 11.2.2).
func (f FailureInfo) bitString() []byte {
	if f == 0 {
		return []byte{0}
	}
	highest := 31 - bits.LeadingZeros32(uint32(f)) // index of the last set bit
	byteCount := highest/8 + 1
	out := make([]byte, 1+byteCount)
	out[0] = byte(7 - highest%8)
	for bit := 0; bit <= highest; bit++ {
		if f&(1<<bit) != 0 {
			out[1+bit/8] |= 0x80 >> (bit % 8)
		}
	}
	return out
}

// StatusInfo is PKIStatusInfo.
//
//	PKIStatusInfo ::= SEQUENCE {
//	    status        PKIStatus,
//	    statusString  PKIFreeText     OPTIONAL,
//	    failInfo      PKIFailureInfo  OPTIONAL }
type StatusInfo struct {
	Status       PKIStatus
	StatusString []string
	FailInfo     FailureInfo
}

func (s StatusInfo) String() string {
	text := s.Status.String()
	if s.FailInfo != 0 {
		text += " (" + s.FailInfo.String() + ")"
	}
	if len(s.StatusString) > 0 {
		text += ": " + strings.Join(s.StatusString, "; ")
	}
	return text
}
