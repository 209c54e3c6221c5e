package cmp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/certgate/certgate/gateway"
	pkicmp "github.com/certgate/certgate/gateway/cmp"
)

// TCP transfer defaults, used when a TCPServer field is zero.
const (
	DefaultTCPReadTimeout       = 30 * time.Second  // to receive one whole frame once it has begun
	DefaultTCPIdleTimeout       = 120 * time.Second // to wait for the next frame on an open connection
	DefaultTCPMaxConnsPerClient = 16                // open connections from one IP address
	DefaultTCPSyncWait          = 5 * time.Second   // processing time before the client gets a pollRep
	pendingLifetime             = 10 * time.Minute  // how long an unpolled TCP result is kept
)

// TCPServer serves CMP on a raw TCP port such as 829. From the first octets of each
// connection it tells apart the RFC 2510 framing, the version-10 framing of the CMP
// transport draft, and HTTP, which it hands to HTTP so that "openssl cmp -server
// host:829" works as well. One connection may carry many messages.
//
// When the router takes longer than SyncWait, the client gets a pollRep with a pollRef
// and fetches the response with pollReq, which is the transport-level polling of both
// framings. These results are kept in this process only: a client that polls must come
// back to the same instance.
type TCPServer struct {
	Router            *gateway.Router
	Profile           string       // profile of framed requests; "" is the default profile
	HTTP              http.Handler // connections that start with an HTTP request line; nil rejects them
	MaxMessageBytes   int
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxConnsPerClient int
	SyncWait          time.Duration
	Logger            *slog.Logger

	mu       sync.Mutex
	clients  map[string]int
	pending  map[uint32]*pendingResult
	nextRef  uint32
	httpConn chan net.Conn
	closed   chan struct{}
	once     sync.Once
}

type pendingResult struct {
	done     chan struct{}
	response []byte
	created  time.Time
}

func (s *TCPServer) init() {
	s.once.Do(func() {
		s.clients = map[string]int{}
		s.pending = map[uint32]*pendingResult{}
		s.httpConn = make(chan net.Conn)
		s.closed = make(chan struct{})
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if s.MaxMessageBytes <= 0 {
			s.MaxMessageBytes = DefaultMaxBodyBytes
		}
		if s.ReadTimeout <= 0 {
			s.ReadTimeout = DefaultTCPReadTimeout
		}
		if s.IdleTimeout <= 0 {
			s.IdleTimeout = DefaultTCPIdleTimeout
		}
		if s.MaxConnsPerClient <= 0 {
			s.MaxConnsPerClient = DefaultTCPMaxConnsPerClient
		}
		if s.SyncWait <= 0 {
			s.SyncWait = DefaultTCPSyncWait
		}
	})
}

// Serve accepts connections on l until l is closed.
func (s *TCPServer) Serve(l net.Listener) error {
	s.init()
	if s.HTTP != nil {
		httpServer := &http.Server{Handler: s.HTTP, ReadTimeout: s.ReadTimeout, IdleTimeout: s.IdleTimeout,
			ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn)}
		go httpServer.Serve(&connListener{conns: s.httpConn, closed: s.closed, addr: l.Addr()})
		defer httpServer.Close()
	}
	defer s.closeOnce()
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		host := remoteHost(conn)
		if !s.admit(host) {
			s.Logger.Warn("CMP TCP connection rejected: too many connections from this client", "remote", conn.RemoteAddr().String(), "limit", s.MaxConnsPerClient)
			conn.Close()
			continue
		}
		go s.serveConn(conn, host)
	}
}

func (s *TCPServer) closeOnce() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
}

func remoteHost(conn net.Conn) string {
	host, _, err := net.SplitHostPort(conn.RemoteAddr().String())
	if err != nil {
		return conn.RemoteAddr().String()
	}
	return host
}

func (s *TCPServer) admit(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[host] >= s.MaxConnsPerClient {
		return false
	}
	s.clients[host]++
	return true
}

func (s *TCPServer) release(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[host]--; s.clients[host] <= 0 {
		delete(s.clients, host)
	}
}

// serveConn reads frames until the client closes, asks to close, goes idle or sends
// something unreadable.
func (s *TCPServer) serveConn(conn net.Conn, host string) {
	reader := bufio.NewReaderSize(conn, 4096)
	handedOver := false
	defer func() {
		s.release(host)
		if !handedOver {
			conn.Close()
		}
	}()
	remote := conn.RemoteAddr().String()

	for first := true; ; first = false {
		conn.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		start, err := reader.Peek(1)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
				s.Logger.Warn("CMP TCP read failed", "remote", remote, "error", err)
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				s.Logger.Info("CMP TCP connection idle; closing", "remote", remote, "idle_timeout", s.IdleTimeout)
			}
			return
		}
		if first && start[0] >= 'A' && start[0] <= 'Z' {
			// A length field starts with 0x00 for any frame under 16 MiB, so an
			// uppercase letter can only begin an HTTP request line.
			if s.HTTP == nil {
				s.Logger.Warn("HTTP on the CMP TCP port is disabled", "remote", remote)
				return
			}
			conn.SetReadDeadline(time.Time{})
			select {
			case s.httpConn <- &peekedConn{Conn: conn, reader: reader}:
				handedOver = true
			case <-s.closed:
			}
			return
		}

		conn.SetReadDeadline(time.Now().Add(s.ReadTimeout))
		frame, err := pkicmp.ReadFrame(reader, s.MaxMessageBytes)
		if err != nil {
			s.rejectFrame(conn, frame, remote, err)
			return
		}
		conn.SetReadDeadline(time.Time{})
		reply, closeAfter := s.handleFrame(conn, frame)
		conn.SetWriteDeadline(time.Now().Add(s.ReadTimeout))
		if _, err := conn.Write(reply.Marshal()); err != nil {
			s.Logger.Warn("CMP TCP write failed", "remote", remote, "error", err)
			return
		}
		if closeAfter {
			return
		}
	}
}

// rejectFrame responds to a frame that could not be read with errorMsgRep, when the framing
// is known and the connection still works, and logs why.
func (s *TCPServer) rejectFrame(conn net.Conn, frame *pkicmp.Frame, remote string, err error) {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded) {
		s.Logger.Warn("CMP TCP frame incomplete; closing", "remote", remote, "error", err)
		return
	}
	s.Logger.Warn("CMP TCP frame rejected", "remote", remote, "error", err)
	framing := pkicmp.FramingRFC2510
	if frame != nil && frame.Framing != 0 {
		framing = frame.Framing
	}
	text := "malformed frame"
	if errors.Is(err, pkicmp.ErrFrameTooLarge) {
		text = fmt.Sprintf("message exceeds the limit of %d octets", s.MaxMessageBytes)
	}
	conn.SetWriteDeadline(time.Now().Add(s.ReadTimeout))
	conn.Write(errorFrame(framing, text, true).Marshal())
}

func errorFrame(framing pkicmp.Framing, text string, closing bool) *pkicmp.Frame {
	frame := &pkicmp.Frame{Framing: framing, Value: pkicmp.ErrorValue(framing, text)}
	if framing == pkicmp.FramingTCPv10 {
		frame.Type = pkicmp.TCPv10ErrorMsgRep
		if closing {
			frame.Flags = pkicmp.FlagCloseConnection
		}
	} else {
		frame.Type = pkicmp.RFC2510ErrorMsgRep
	}
	return frame
}

// handleFrame returns the reply to one frame and whether to close afterwards.
func (s *TCPServer) handleFrame(conn net.Conn, frame *pkicmp.Frame) (*pkicmp.Frame, bool) {
	closeAfter := frame.Framing == pkicmp.FramingTCPv10 && frame.Flags&pkicmp.FlagCloseConnection != 0
	var reply *pkicmp.Frame
	switch {
	case frame.Type == pkicmp.RFC2510PKIMsg: // the same value, 0, in both framings
		reply = s.process(conn, frame.Framing, frame.Value)
	case frame.Type == pkicmp.RFC2510PollReq: // 2 in both framings
		reply = s.pollTransport(frame.Framing, frame.Value)
	default:
		reply = errorFrame(frame.Framing, fmt.Sprintf("message type %d is not a request", frame.Type), false)
	}
	if closeAfter {
		reply.Flags |= pkicmp.FlagCloseConnection
	}
	return reply, closeAfter
}

// process runs a PKIMessage through the router. When the router has not returned within
// SyncWait, the client gets a pollRep.
func (s *TCPServer) process(conn net.Conn, framing pkicmp.Framing, der []byte) *pkicmp.Frame {
	result := &pendingResult{done: make(chan struct{}), created: time.Now()}
	origin := gateway.Origin{Frontend: "cmp-tcp", Profile: s.Profile, RemoteAddr: conn.RemoteAddr().String()}
	go func() {
		// Detached from the connection: the result is kept for polling if the client
		// disconnects.
		result.response = s.Router.Handle(context.Background(), origin, der)
		close(result.done)
	}()
	select {
	case <-result.done:
		return responseFrame(framing, result.response)
	case <-time.After(s.SyncWait):
	}
	ref := s.storePending(result)
	return pollRepFrame(framing, ref, s.SyncWait)
}

func (s *TCPServer) storePending(result *pendingResult) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ref, p := range s.pending {
		if time.Since(p.created) > pendingLifetime {
			delete(s.pending, ref)
		}
	}
	s.nextRef++
	if s.nextRef == 0 {
		s.nextRef = 1
	}
	s.pending[s.nextRef] = result
	return s.nextRef
}

func pollRepFrame(framing pkicmp.Framing, ref uint32, wait time.Duration) *pkicmp.Frame {
	checkBack := uint32(time.Now().Add(wait).Unix())
	frame := &pkicmp.Frame{Framing: framing, Type: pkicmp.RFC2510PollRep, Value: pkicmp.PollValue(ref, checkBack)}
	return frame
}

// pollTransport responds to a transport-level pollReq.
func (s *TCPServer) pollTransport(framing pkicmp.Framing, value []byte) *pkicmp.Frame {
	ref, _, err := pkicmp.ParsePollValue(value)
	if err != nil {
		return errorFrame(framing, "malformed pollReq", false)
	}
	s.mu.Lock()
	result, ok := s.pending[ref]
	s.mu.Unlock()
	if !ok {
		if framing == pkicmp.FramingRFC2510 {
			return &pkicmp.Frame{Framing: framing, Type: pkicmp.RFC2510NegPollRep, Value: []byte{0}}
		}
		return errorFrame(framing, fmt.Sprintf("unknown pollRef %d", ref), false)
	}
	select {
	case <-result.done:
		s.mu.Lock()
		delete(s.pending, ref)
		s.mu.Unlock()
		return responseFrame(framing, result.response)
	default:
		return pollRepFrame(framing, ref, s.SyncWait)
	}
}

// responseFrame wraps a DER response: finalMsgRep in the RFC 2510 framing; in the
// version-10 framing pkiRep, or finRep for the pkiConf that ends a transaction.
func responseFrame(framing pkicmp.Framing, der []byte) *pkicmp.Frame {
	if framing == pkicmp.FramingRFC2510 {
		return &pkicmp.Frame{Framing: framing, Type: pkicmp.RFC2510FinalMsgRep, Value: der}
	}
	frameType := pkicmp.TCPv10PKIRep
	if m, err := pkicmp.ParseMessage(der); err == nil && m.Body.Type == pkicmp.BodyPKIConf {
		frameType = pkicmp.TCPv10FinRep
	}
	return &pkicmp.Frame{Framing: framing, Type: frameType, Value: der}
}

// peekedConn is a connection whose first octets were read into a bufio.Reader.
type peekedConn struct {
	net.Conn
	reader *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.reader.Read(p) }

// connListener feeds connections that TCPServer recognised as HTTP to an http.Server.
type connListener struct {
	conns  chan net.Conn
	closed chan struct{}
	addr   net.Addr
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error   { return nil }
func (l *connListener) Addr() net.Addr { return l.addr }
