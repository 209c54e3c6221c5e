package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// maxResponseBytes bounds a response body. A CMP ip with the certificate, the CA chain
// and caPubs is a few kilobytes; a megabyte only guards against a broken server.
const maxResponseBytes = 1 << 20

// httpTransport posts requests with one keep-alive connection per client, or with a new
// connection per request when keep-alive is off. It is safe for concurrent use, so all
// clients share it and its connection pool.
type httpTransport struct {
	url         string
	contentType string
	client      *http.Client
}

func newHTTPTransport(url, contentType string, keepAlive bool) *httpTransport {
	transport := &http.Transport{
		// No proxy from the environment: the generator measures the server it is given.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        0, // no limit in total
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		DisableKeepAlives:   !keepAlive,
		ForceAttemptHTTP2:   false,
	}
	return &httpTransport{url: url, contentType: contentType, client: &http.Client{Transport: transport}}
}

func (t *httpTransport) Send(ctx context.Context, request []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(request))
	if err != nil {
		return nil, &exchangeError{kind: "transport other", err: err}
	}
	req.Header.Set("Content-Type", t.contentType)
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, &exchangeError{kind: transportKind(err), err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, &exchangeError{kind: transportKind(err), err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &exchangeError{kind: fmt.Sprintf("http %d", resp.StatusCode), err: fmt.Errorf("HTTP status %s", resp.Status)}
	}
	return body, nil
}

// Close closes the idle connections. It is called once per client, and the connections
// of the other clients are opened again on their next request.
func (t *httpTransport) Close() error {
	t.client.CloseIdleConnections()
	return nil
}
