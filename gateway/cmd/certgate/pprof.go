package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// pprofAddress is the --pprof flag of serve: where to serve net/http/pprof, or empty.
var pprofAddress string

// startPprof serves Go's profiling endpoints on address when it is set, on a listener of
// its own so that they never share a port with the protocols. The returned function
// stops it.
func startPprof(address string, logger *slog.Logger) (func(), error) {
	if address == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	listener, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s for --pprof: %w", address, err)
	}
	server := &http.Server{Handler: mux}
	go server.Serve(listener)
	logger.Warn("pprof listening; it exposes internals, so keep it on loopback", "address", listener.Addr().String())
	return func() { server.Close() }, nil
}
