package cmp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pkicmp "github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/cmpclient"
)

// startTCP serves the fixture's router on a loopback TCP port.
func (f *fixture) startTCP(configure func(*TCPServer)) (string, *TCPServer) {
	f.t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	server := &TCPServer{Router: f.router, HTTP: f.server.Config.Handler, MaxMessageBytes: 64 << 10,
		ReadTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second}
	if configure != nil {
		configure(server)
	}
	go server.Serve(listener)
	f.t.Cleanup(func() { listener.Close() })
	return listener.Addr().String(), server
}

func (f *fixture) macClient(transport cmpclient.Transport) *cmpclient.Client {
	return &cmpclient.Client{Transport: transport, MAC: &cmpclient.MACCredential{Reference: testReference, Secret: []byte(testSecret)}}
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestClientOverEveryTransport(t *testing.T) {
	f := newFixture(t, nil)
	address, _ := f.startTCP(nil)
	transports := map[string]cmpclient.Transport{
		"http":          &cmpclient.HTTPTransport{URL: f.server.URL + WellKnownPath},
		"http on tcp":   &cmpclient.HTTPTransport{URL: "http://" + address + WellKnownPath},
		"rfc2510":       &cmpclient.TCPTransport{Address: address, Framing: pkicmp.FramingRFC2510},
		"tcp version10": &cmpclient.TCPTransport{Address: address, Framing: pkicmp.FramingTCPv10},
	}
	for name, transport := range transports {
		t.Run(name, func(t *testing.T) {
			defer transport.Close()
			client := f.macClient(transport)
			key := newECKey(t)
			result, err := client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyIR, Key: key, Subject: pkix.Name{CommonName: name}})
			if err != nil {
				t.Fatalf("ir: %v", err)
			}
			if _, err := result.Certificate.Verify(x509.VerifyOptions{Roots: poolOf(f.ca.Root), Intermediates: poolOf(f.ca.Issuing)}); err != nil {
				t.Errorf("issued certificate does not chain: %v", err)
			}

			// kur and rr signed with the new certificate, on the same connection.
			signed := &cmpclient.Client{Transport: transport, TrustedRoots: poolOf(f.ca.Root),
				Signer: &pkicmp.SignatureProtector{Signer: key, Certificate: result.Certificate, Chain: []*x509.Certificate{f.ca.Issuing}}}
			updated, err := signed.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyKUR, Key: newECKey(t), OldCert: result.Certificate})
			if err != nil {
				t.Fatalf("kur: %v", err)
			}
			if err := signed.Revoke(context.Background(), result.Certificate, 4); err != nil {
				t.Fatalf("rr: %v", err)
			}
			infos, err := client.General(context.Background(), pkicmp.OIDITCACerts)
			if err != nil || len(infos) != 1 || infos[0].Value == nil {
				t.Fatalf("genm caCerts = %v, %v", infos, err)
			}
			if updated.Certificate.Subject.CommonName != name {
				t.Errorf("kur subject = %q", updated.Certificate.Subject)
			}
		})
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return pool
}

func TestClientPollsDelayedEnrollment(t *testing.T) {
	f := newFixture(t, nil)
	f.ca.PendingPolls = 1
	address, _ := f.startTCP(nil)
	client := f.macClient(&cmpclient.TCPTransport{Address: address, Framing: pkicmp.FramingTCPv10})
	if _, err := client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyCR, Key: newECKey(t), Subject: pkix.Name{CommonName: "delayed"}}); err != nil {
		t.Fatal(err)
	}
	if f.ca.Calls["Poll"] != 1 {
		t.Errorf("backend polled %d times, want 1", f.ca.Calls["Poll"])
	}
}

func TestTransportPollingOfSlowCA(t *testing.T) {
	f := newFixture(t, nil)
	f.ca.Delay = 300 * time.Millisecond
	address, _ := f.startTCP(func(s *TCPServer) { s.SyncWait = 50 * time.Millisecond })
	for _, framing := range []pkicmp.Framing{pkicmp.FramingRFC2510, pkicmp.FramingTCPv10} {
		client := f.macClient(&cmpclient.TCPTransport{Address: address, Framing: framing})
		if _, err := client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyIR, Key: newECKey(t), Subject: pkix.Name{CommonName: "slow"}}); err != nil {
			t.Errorf("%s: %v", framing, err)
		}
	}
}

func TestOpenSSLOnTCPPort(t *testing.T) {
	f := newFixture(t, nil)
	address, _ := f.startTCP(nil)
	key := f.newKey("ee.key", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
	f.url = address
	f.mustCMP(append(macArgs(), "-cmd", "ir", "-newkey", key, "-subject", "/CN=tcp-port", "-certout", "tcp.pem")...)
	f.verify(filepath.Join(f.dir, "tcp.pem"))
}

// rawExchange writes raw octets and reads one frame back.
func rawExchange(t *testing.T, address string, request []byte) (*pkicmp.Frame, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(request); err != nil {
		t.Fatal(err)
	}
	frame, err := pkicmp.ReadFrame(bufio.NewReader(conn), 1<<20)
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	return frame, conn
}

func TestHandBuiltFrames(t *testing.T) {
	f := newFixture(t, nil)
	address, _ := f.startTCP(nil)
	garbage := []byte("not a PKIMessage")
	tests := []struct {
		name      string
		request   *pkicmp.Frame
		wantType  uint8
		wantClose bool
	}{
		{"rfc2510 pkiMsg garbage", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510PKIMsg, Value: garbage}, pkicmp.RFC2510FinalMsgRep, false},
		{"rfc2510 pollReq unknown", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510PollReq, Value: pkicmp.PollValue(99, 0)[:4]}, pkicmp.RFC2510NegPollRep, false},
		{"rfc2510 pollReq short", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510PollReq, Value: []byte{1}}, pkicmp.RFC2510ErrorMsgRep, false},
		{"rfc2510 pollRep from client", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510PollRep, Value: pkicmp.PollValue(1, 1)}, pkicmp.RFC2510ErrorMsgRep, false},
		{"rfc2510 negPollRep from client", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510NegPollRep, Value: []byte{0}}, pkicmp.RFC2510ErrorMsgRep, false},
		{"rfc2510 partialMsgRep from client", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510PartialMsgRep, Value: pkicmp.PollValue(1, 1)}, pkicmp.RFC2510ErrorMsgRep, false},
		{"rfc2510 finalMsgRep from client", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510FinalMsgRep, Value: garbage}, pkicmp.RFC2510ErrorMsgRep, false},
		{"rfc2510 errorMsgRep from client", &pkicmp.Frame{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510ErrorMsgRep, Value: []byte("oops")}, pkicmp.RFC2510ErrorMsgRep, false},
		{"v10 pkiReq garbage", &pkicmp.Frame{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10PKIReq, Value: garbage}, pkicmp.TCPv10PKIRep, false},
		{"v10 pkiReq with close", &pkicmp.Frame{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10PKIReq, Flags: pkicmp.FlagCloseConnection, Value: garbage}, pkicmp.TCPv10PKIRep, true},
		{"v10 pollReq unknown", &pkicmp.Frame{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10PollReq, Value: pkicmp.PollValue(99, 0)[:4]}, pkicmp.TCPv10ErrorMsgRep, false},
		{"v10 pollRep from client", &pkicmp.Frame{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10PollRep, Value: pkicmp.PollValue(1, 1)}, pkicmp.TCPv10ErrorMsgRep, false},
		{"v10 finRep from client", &pkicmp.Frame{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10FinRep, Value: garbage}, pkicmp.TCPv10ErrorMsgRep, false},
		{"v10 pkiRep from client", &pkicmp.Frame{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10PKIRep, Value: garbage}, pkicmp.TCPv10ErrorMsgRep, false},
		{"v10 errorMsgRep from client", &pkicmp.Frame{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10ErrorMsgRep, Value: pkicmp.ErrorValue(pkicmp.FramingTCPv10, "oops")}, pkicmp.TCPv10ErrorMsgRep, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, conn := rawExchange(t, address, tt.request.Marshal())
			if reply.Framing != tt.request.Framing {
				t.Errorf("reply framing %s, want %s", reply.Framing, tt.request.Framing)
			}
			if reply.Type != tt.wantType {
				t.Fatalf("reply type %d, want %d (%q)", reply.Type, tt.wantType, pkicmp.ErrorText(reply.Framing, reply.Value))
			}
			if reply.Type == pkicmp.RFC2510FinalMsgRep || reply.Type == pkicmp.TCPv10PKIRep {
				m, err := pkicmp.ParseMessage(reply.Value)
				if err != nil {
					t.Fatal(err)
				}
				if got := failInfoOf(m); got != pkicmp.FailBadDataFormat {
					t.Errorf("failInfo %s, want badDataFormat", got)
				}
			}
			gotClose := reply.Flags&pkicmp.FlagCloseConnection != 0
			if tt.request.Framing == pkicmp.FramingTCPv10 && gotClose != tt.wantClose {
				t.Errorf("close flag %v, want %v", gotClose, tt.wantClose)
			}
			if tt.wantClose {
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
					t.Errorf("connection still open after the close flag: %v", err)
				}
			}
		})
	}
}

func TestMalformedFramesCloseTheConnection(t *testing.T) {
	f := newFixture(t, nil)
	address, _ := f.startTCP(func(s *TCPServer) { s.MaxMessageBytes = 1024 })

	t.Run("oversized", func(t *testing.T) {
		header := make([]byte, 5)
		binary.BigEndian.PutUint32(header, 1<<20)
		reply, _ := rawExchange(t, address, header)
		if reply.Type != pkicmp.RFC2510ErrorMsgRep || !strings.Contains(string(reply.Value), "limit") {
			t.Errorf("reply %d %q, want errorMsgRep about the limit", reply.Type, reply.Value)
		}
	})
	t.Run("unknown v10 type", func(t *testing.T) {
		reply, _ := rawExchange(t, address, []byte{0, 0, 0, 3, 10, 0, 4})
		if reply.Type != pkicmp.TCPv10ErrorMsgRep || reply.Flags&pkicmp.FlagCloseConnection == 0 {
			t.Errorf("reply type %d flags %d, want errorMsgRep with the close flag", reply.Type, reply.Flags)
		}
	})
	t.Run("unknown first octet", func(t *testing.T) {
		reply, _ := rawExchange(t, address, []byte{0, 0, 0, 1, 9})
		if reply.Type != pkicmp.RFC2510ErrorMsgRep {
			t.Errorf("reply type %d, want errorMsgRep", reply.Type)
		}
	})
	for name, data := range map[string][]byte{
		"truncated": {0, 0, 0, 100, 0, 0x30, 0x82},
		"silent":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", address)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(data)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			n, err := conn.Read(make([]byte, 1))
			if n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("read %d octets, error %v; want the server to close", n, err)
			}
			if elapsed := time.Since(start); elapsed > 4*time.Second {
				t.Errorf("server closed after %s, want about its 2s timeout", elapsed)
			}
		})
	}
}

func TestConnectionLimitPerClient(t *testing.T) {
	f := newFixture(t, nil)
	address, _ := f.startTCP(func(s *TCPServer) { s.MaxConnsPerClient = 4 })
	var conns []net.Conn
	for range 4 {
		conn, err := net.Dial("tcp", address)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		defer conn.Close()
	}
	time.Sleep(100 * time.Millisecond)
	extra, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("fifth connection: %v, want it closed", err)
	}
	conns[0].Close()
	time.Sleep(100 * time.Millisecond)
	again, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	client := f.macClient(&cmpclient.TCPTransport{Address: address, Framing: pkicmp.FramingRFC2510})
	if _, err := client.General(context.Background(), pkicmp.OIDITCACerts); err == nil {
		t.Log("a slot freed by a closed connection is reused")
	}
}

func TestManyConcurrentTCPClients(t *testing.T) {
	f := newFixture(t, nil)
	address, _ := f.startTCP(func(s *TCPServer) { s.MaxConnsPerClient = 64 })
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			framing := pkicmp.FramingRFC2510
			if i%2 == 1 {
				framing = pkicmp.FramingTCPv10
			}
			transport := &cmpclient.TCPTransport{Address: address, Framing: framing}
			defer transport.Close()
			client := f.macClient(transport)
			for range 3 {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if _, err := client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyIR, Key: key, Subject: pkix.Name{CommonName: "many"}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzReadFrame feeds mutations of real frames to the TCP frame decoder.
func FuzzReadFrame(f *testing.F) {
	ir, err := os.ReadFile(filepath.Join("..", "..", "gateway", "cmp", "testdata", "ir_pbm_sha1.der"))
	if err != nil {
		f.Fatal(err)
	}
	for _, frame := range []*pkicmp.Frame{
		{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510PKIMsg, Value: ir},
		{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10PKIReq, Value: ir},
		{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10PollReq, Flags: 1, Value: pkicmp.PollValue(7, 0)[:4]},
		{Framing: pkicmp.FramingRFC2510, Type: pkicmp.RFC2510PollRep, Value: pkicmp.PollValue(7, 9)},
		{Framing: pkicmp.FramingTCPv10, Type: pkicmp.TCPv10ErrorMsgRep, Value: pkicmp.ErrorValue(pkicmp.FramingTCPv10, "x")},
	} {
		f.Add(frame.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, err := pkicmp.ReadFrame(strings.NewReader(string(data)), 1<<16)
		if err != nil {
			return
		}
		again, err := pkicmp.ReadFrame(strings.NewReader(string(frame.Marshal())), 1<<16)
		if err != nil {
			t.Fatalf("re-reading a marshalled frame: %v", err)
		}
		if again.Type != frame.Type || again.Framing != frame.Framing || string(again.Value) != string(frame.Value) {
			t.Fatal("frame changed in a round trip")
		}
		pkicmp.ParsePollValue(frame.Value)
		pkicmp.ErrorText(frame.Framing, frame.Value)
	})
}

// pvnoRecorder passes messages to an HTTP transport and keeps the pvno of each response.
type pvnoRecorder struct {
	next  cmpclient.Transport
	pvnos []int
}

func (r *pvnoRecorder) Exchange(ctx context.Context, request []byte) ([]byte, error) {
	response, err := r.next.Exchange(ctx, request)
	if err == nil {
		if m, parseErr := pkicmp.ParseMessage(response); parseErr == nil {
			r.pvnos = append(r.pvnos, m.Header.PVNO)
		}
	}
	return response, err
}

func (r *pvnoRecorder) Close() error { return r.next.Close() }

func TestCMP2021ClientGetsPVNO3(t *testing.T) {
	f := newFixture(t, nil)
	recorder := &pvnoRecorder{next: &cmpclient.HTTPTransport{URL: f.server.URL + WellKnownPath}}
	client := f.macClient(recorder)
	client.PVNO = pkicmp.PVNO2021
	// The certConf carries hashAlg SHA-512, which the server must use for certHash: the
	// certificate itself is signed with ECDSA and SHA-256.
	result, err := client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyIR, Key: newECKey(t), Subject: pkix.Name{CommonName: "cmp2021"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(recorder.pvnos) != 2 {
		t.Fatalf("%d responses, want ip and pkiconf", len(recorder.pvnos))
	}
	for i, pvno := range recorder.pvnos {
		if pvno != pkicmp.PVNO2021 {
			t.Errorf("response %d has pvno %d, want 3", i, pvno)
		}
	}
	if got := f.certificateStatus(result.Certificate); got != "confirmed" {
		t.Errorf("certificate is %q after a cmp2021 certConf, want confirmed", got)
	}
}

// A backend that leaves a revocation pending makes the router respond to the rr with an
// error message of status waiting. The client polls with certReqId -1 and receives the
// rp once the backend decides.
func TestClientPollsDelayedRevocation(t *testing.T) {
	f := newFixture(t, nil)
	address, _ := f.startTCP(nil)
	transports := map[string]func() cmpclient.Transport{
		"http": func() cmpclient.Transport { return &cmpclient.HTTPTransport{URL: f.server.URL + "/.well-known/cmp"} },
		"tcp-v10": func() cmpclient.Transport {
			return &cmpclient.TCPTransport{Address: address, Framing: pkicmp.FramingTCPv10}
		},
	}
	for name, transport := range transports {
		t.Run(name, func(t *testing.T) {
			client := f.macClient(transport())
			result, err := client.Enroll(context.Background(), cmpclient.EnrollRequest{Type: pkicmp.BodyIR, Key: newECKey(t), Subject: pkix.Name{CommonName: "revoked later"}})
			if err != nil {
				t.Fatal(err)
			}
			f.ca.PendingRevokePolls = 1
			defer func() { f.ca.PendingRevokePolls = 0 }()
			polls := f.ca.Calls["PollRevoke"]
			if err := client.Revoke(context.Background(), result.Certificate, 1); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if got := f.ca.Calls["PollRevoke"] - polls; got != 1 {
				t.Errorf("backend polled the revocation %d times, want 1", got)
			}
			if reason, ok := f.ca.Revoked(result.Certificate.SerialNumber); !ok || reason != 1 {
				t.Errorf("CA revocation = %v, %d; want revoked with keyCompromise", ok, reason)
			}
			record, err := f.store.Certificate(context.Background(), result.Certificate.RawIssuer, result.Certificate.SerialNumber)
			if err != nil {
				t.Fatal(err)
			}
			if record.Status != "revoked" || record.RevocationReason != 1 {
				t.Errorf("stored status = %s reason %d, want revoked reason 1", record.Status, record.RevocationReason)
			}
		})
	}
}
