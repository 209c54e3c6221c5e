// Package cmpclient is a CMP client (RFC 9810, profiled by RFC 9483) built on certgate's
// codec. It enrolls with ir, cr, kur and p10cr (answering certConf and polling for
// delayed delivery), revokes with rr and asks genm questions, over HTTP (RFC 9811) or raw
// TCP in either historic framing. certgate's tests use it next to openssl cmp, operators
// use it as "certgate cmp", and the upstream-CMP backend will reuse it.
package cmpclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certgate/certgate/gateway/cmp"
)

// maxResponseBytes bounds a response. OpenSSL's client uses 100 KiB; certgate's own
// responses are far smaller, and 1 MiB leaves room for long chains and CRLs.
const maxResponseBytes = 1 << 20

// Transport sends one DER PKIMessage and returns the DER response.
type Transport interface {
	Exchange(ctx context.Context, request []byte) ([]byte, error)
	Close() error
}

// HTTPTransport is CMP over HTTP: a POST of application/pkixcmp to URL.
type HTTPTransport struct {
	URL    string
	Client *http.Client // nil means http.DefaultClient
}

// Exchange implements Transport.
func (t *HTTPTransport) Exchange(ctx context.Context, request []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(request))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/pkixcmp")
	// A nil Idempotency-Key is not sent, but lets net/http resend the request when a
	// reused keep-alive connection turns out closed before any response, as OpenSSL's
	// mock server does after some exchanges. Resending is safe because a server that did
	// see the message rejects the copy by its senderNonce.
	req.Header["Idempotency-Key"] = nil
	client := t.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the CMP response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CMP server responded with HTTP %s: %s", resp.Status, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	if mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mediaType != "application/pkixcmp" {
		return nil, fmt.Errorf("CMP server responded with Content-Type %q, want application/pkixcmp", resp.Header.Get("Content-Type"))
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("CMP response exceeds %d bytes", maxResponseBytes)
	}
	return body, nil
}

// Close implements Transport.
func (t *HTTPTransport) Close() error { return nil }

// TCPTransport is CMP over raw TCP in one of the two framings. It keeps one connection
// open across messages and follows transport-level pollRep responses until the response
// arrives or ctx ends.
type TCPTransport struct {
	Address string
	Framing cmp.Framing
	Dialer  net.Dialer

	mu     sync.Mutex
	conn   net.Conn
	reader *bufio.Reader
}

// Exchange implements Transport.
func (t *TCPTransport) Exchange(ctx context.Context, request []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	frame := &cmp.Frame{Framing: t.Framing, Type: cmp.RFC2510PKIMsg, Value: request}
	for {
		reply, err := t.roundTrip(ctx, frame)
		if err != nil {
			t.closeLocked()
			return nil, err
		}
		if reply.Framing == cmp.FramingTCPv10 && reply.Flags&cmp.FlagCloseConnection != 0 {
			t.closeLocked()
		}
		switch {
		case reply.Framing == cmp.FramingRFC2510 && reply.Type == cmp.RFC2510FinalMsgRep,
			reply.Framing == cmp.FramingTCPv10 && (reply.Type == cmp.TCPv10PKIRep || reply.Type == cmp.TCPv10FinRep):
			return reply.Value, nil
		case reply.Type == cmp.RFC2510PollRep: // 1 in both framings
			ref, checkBack, err := cmp.ParsePollValue(reply.Value)
			if err != nil {
				return nil, err
			}
			wait := time.Until(time.Unix(int64(checkBack), 0))
			wait = min(max(wait, 100*time.Millisecond), time.Minute)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			frame = &cmp.Frame{Framing: t.Framing, Type: cmp.RFC2510PollReq, Value: cmp.PollValue(ref, 0)[:4]}
		case reply.Type == cmp.RFC2510ErrorMsgRep: // 6 in both framings
			return nil, fmt.Errorf("CMP TCP server sent errorMsgRep: %s", cmp.ErrorText(reply.Framing, reply.Value))
		case reply.Framing == cmp.FramingRFC2510 && reply.Type == cmp.RFC2510NegPollRep:
			return nil, errors.New("CMP TCP server sent negPollRep: it has no response for this request")
		default:
			return nil, fmt.Errorf("unexpected CMP TCP message type %d in the %s framing", reply.Type, reply.Framing)
		}
	}
}

func (t *TCPTransport) roundTrip(ctx context.Context, frame *cmp.Frame) (*cmp.Frame, error) {
	if t.conn == nil {
		conn, err := t.Dialer.DialContext(ctx, "tcp", t.Address)
		if err != nil {
			return nil, err
		}
		t.conn, t.reader = conn, bufio.NewReader(conn)
	}
	if deadline, ok := ctx.Deadline(); ok {
		t.conn.SetDeadline(deadline)
	} else {
		t.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	}
	if _, err := t.conn.Write(frame.Marshal()); err != nil {
		return nil, err
	}
	reply, err := cmp.ReadFrame(t.reader, maxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("reading the CMP TCP response: %w", err)
	}
	if reply.Framing != t.Framing {
		return nil, fmt.Errorf("CMP TCP server responded in the %s framing to a %s request", reply.Framing, t.Framing)
	}
	return reply, nil
}

func (t *TCPTransport) closeLocked() {
	if t.conn != nil {
		t.conn.Close()
		t.conn, t.reader = nil, nil
	}
}

// Close implements Transport.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeLocked()
	return nil
}
