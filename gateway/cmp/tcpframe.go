package cmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// CMP over raw TCP has two historic framings, both on port 829 (IANA "pkix-3-ca-ra"):
//
//	RFC 2510 section 5.2:   length(4) | type(1) | value
//	TCP draft, version 10:  length(4) | version=10(1) | flags(1) | type(1) | value
//
// length counts the octets after itself. The fifth octet distinguishes the framings: the
// RFC 2510 types are 0 to 6, and version 10 was chosen to be unlike any of them. RFC
// 4210 dropped TCP transfer and RFC 6712 specified HTTP only, so these framings are kept
// for clients of that era (cryptlib, older EJBCA clients). The draft-10 layout follows
// "Transport Protocols for CMP" (draft-ietf-pkix-cmp-transport-protocols-10).

// Framing selects one of the two TCP framings.
type Framing int

// The TCP framings.
const (
	FramingRFC2510 Framing = 1
	FramingTCPv10  Framing = 2
)

func (f Framing) String() string {
	switch f {
	case FramingRFC2510:
		return "rfc2510"
	case FramingTCPv10:
		return "tcp-v10"
	}
	return fmt.Sprintf("framing(%d)", int(f))
}

// tcpVersion10 is the version octet of the draft framing.
const tcpVersion10 = 10

// Message types of the RFC 2510 framing (section 5.2).
const (
	RFC2510PKIMsg        uint8 = 0 // value: DER PKIMessage
	RFC2510PollRep       uint8 = 1 // value: pollRef(4) | timeToCheckBack(4)
	RFC2510PollReq       uint8 = 2 // value: pollRef(4)
	RFC2510NegPollRep    uint8 = 3 // value: one zero octet
	RFC2510PartialMsgRep uint8 = 4 // value: nextPollRef(4) | timeToCheckBack(4) | DER PKIMessage
	RFC2510FinalMsgRep   uint8 = 5 // value: DER PKIMessage
	RFC2510ErrorMsgRep   uint8 = 6 // value: human-readable error text
)

// Message types of the version-10 framing.
const (
	TCPv10PKIReq      uint8 = 0 // client request: DER PKIMessage
	TCPv10PollRep     uint8 = 1 // value: pollRef(4) | timeToCheckBack(4)
	TCPv10PollReq     uint8 = 2 // value: pollRef(4)
	TCPv10FinRep      uint8 = 3 // DER PKIMessage that ends a transaction (the pkiConf)
	TCPv10PKIRep      uint8 = 5 // DER PKIMessage response
	TCPv10ErrorMsgRep uint8 = 6 // value: errorCode(2) | length(2) | data | text
)

// FlagCloseConnection is bit 0 of the version-10 flags: the sender closes the connection
// after this message, or requests that the peer do so.
const FlagCloseConnection uint8 = 0x01

// ErrFrameTooLarge is returned when a frame declares more octets than allowed.
var ErrFrameTooLarge = errors.New("cmp: TCP frame too large")

// Frame is one message of a TCP framing.
type Frame struct {
	Framing Framing
	Type    uint8
	Flags   uint8 // version-10 framing only
	Value   []byte
}

// headerLength returns the octets after the length field that precede the value.
func (f Framing) headerLength() int {
	if f == FramingTCPv10 {
		return 3
	}
	return 1
}

// ReadFrame reads one frame of either framing from r. It rejects frames whose length
// exceeds maxValue octets of value before allocating, and frames of unknown type. When
// the framing could be told before an error, the returned frame carries it, so that the
// caller can answer in the same framing.
func ReadFrame(r io.Reader, maxValue int) (*Frame, error) {
	var prefix [5]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, err
	}
	length := binary.BigEndian.Uint32(prefix[:4])
	frame := &Frame{}
	switch {
	case prefix[4] == tcpVersion10:
		frame.Framing = FramingTCPv10
	case prefix[4] <= RFC2510ErrorMsgRep:
		frame.Framing = FramingRFC2510
		frame.Type = prefix[4]
	default:
		return nil, fmt.Errorf("%w: octet 5 is %d, neither an RFC 2510 message type (0 to 6) nor version 10", ErrMalformed, prefix[4])
	}
	header := frame.Framing.headerLength()
	if int64(length) < int64(header) {
		return frame, fmt.Errorf("%w: TCP frame length %d is shorter than its header", ErrMalformed, length)
	}
	if int64(length)-int64(header) > int64(maxValue) {
		return frame, fmt.Errorf("%w: %d octets, limit %d", ErrFrameTooLarge, int64(length)-int64(header), maxValue)
	}
	if frame.Framing == FramingTCPv10 {
		var rest [2]byte
		if _, err := io.ReadFull(r, rest[:]); err != nil {
			return frame, unexpectedEOF(err)
		}
		frame.Flags, frame.Type = rest[0], rest[1]
		if frame.Type > TCPv10ErrorMsgRep || frame.Type == 4 {
			return frame, fmt.Errorf("%w: unknown version-10 message type %d", ErrMalformed, frame.Type)
		}
	}
	frame.Value = make([]byte, int(length)-header)
	if _, err := io.ReadFull(r, frame.Value); err != nil {
		return frame, unexpectedEOF(err)
	}
	return frame, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Marshal returns the frame as octets on the wire.
func (f *Frame) Marshal() []byte {
	header := f.Framing.headerLength()
	out := make([]byte, 4+header+len(f.Value))
	binary.BigEndian.PutUint32(out, uint32(header+len(f.Value)))
	if f.Framing == FramingTCPv10 {
		out[4], out[5], out[6] = tcpVersion10, f.Flags, f.Type
	} else {
		out[4] = f.Type
	}
	copy(out[4+header:], f.Value)
	return out
}

// PollValue returns the value of a pollRep: pollRef and the time to check back, in
// seconds since 1970 (RFC 2510 section 5.2.3 gives an absolute time).
func PollValue(pollRef uint32, checkBack uint32) []byte {
	out := make([]byte, 8)
	binary.BigEndian.PutUint32(out, pollRef)
	binary.BigEndian.PutUint32(out[4:], checkBack)
	return out
}

// ParsePollValue reads a pollReq value (pollRef only) or a pollRep value (pollRef and
// time to check back).
func ParsePollValue(value []byte) (pollRef uint32, checkBack uint32, err error) {
	switch len(value) {
	case 4:
		return binary.BigEndian.Uint32(value), 0, nil
	case 8:
		return binary.BigEndian.Uint32(value), binary.BigEndian.Uint32(value[4:]), nil
	}
	return 0, 0, fmt.Errorf("%w: poll value of %d octets, want 4 or 8", ErrMalformed, len(value))
}

// ErrorValue returns the value of an errorMsgRep with text. The version-10 layout puts
// an error code and a length-prefixed copy of the offending data before the text; this
// sends code 0 and no data.
func ErrorValue(framing Framing, text string) []byte {
	if framing != FramingTCPv10 {
		return []byte(text)
	}
	out := make([]byte, 4+len(text))
	copy(out[4:], text)
	return out
}

// ErrorText returns the text of an errorMsgRep value.
func ErrorText(framing Framing, value []byte) string {
	if framing != FramingTCPv10 {
		return string(value)
	}
	if len(value) < 4 {
		return ""
	}
	skip := 4 + int(binary.BigEndian.Uint16(value[2:4]))
	if skip > len(value) {
		return ""
	}
	return string(value[skip:])
}
