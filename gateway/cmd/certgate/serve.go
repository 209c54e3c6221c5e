package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/backends/upstreamcmp"
	cmpfrontend "github.com/certgate/certgate/frontends/cmp"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/config"
	"github.com/certgate/certgate/gateway/store"
)

// cleanupInterval is how often expired transactions and nonces are deleted.
const cleanupInterval = time.Minute

// newLogger returns the process logger for the configured level and format.
func newLogger(cfg config.Log) *slog.Logger {
	options := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, options))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, options))
}

// serve runs the gateway until SIGINT or SIGTERM. embedded reports that cfg is the
// embedded default configuration, on which an unbindable TCP port is only a warning.
func serve(parent context.Context, cfg *config.Config, embedded bool) error {
	start := time.Now()
	logger := newLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data_dir %s: %w", cfg.DataDir, err)
	}
	stopPprof, err := startPprof(pprofAddress, logger)
	if err != nil {
		return err
	}
	defer stopPprof()
	db, err := store.OpenSQLiteWith(ctx, filepath.Join(cfg.DataDir, "certgate.db"), store.SQLiteOptions{FullSync: cfg.Database.Synchronous == "full"})
	if err != nil {
		return err
	}
	defer db.Close()

	launched, err := launchBackends(ctx, cfg, logger)
	defer func() {
		for name, backend := range launched {
			if err := backend.Close(); err != nil {
				logger.Warn("stopping backend failed", "backend", name, "error", err)
			}
		}
	}()
	if err != nil {
		return err
	}

	opts, err := routerOptions(ctx, cfg, db, launched, logger)
	if err != nil {
		return err
	}
	router, err := gateway.New(*opts)
	if err != nil {
		return err
	}

	cmpHandler := &cmpfrontend.Handler{Router: router, MaxBodyBytes: cfg.HTTP.MaxRequestBytes, Logger: logger}
	crlHandler := &cmpfrontend.CRLHandler{Router: router, Logger: logger}
	scepHandler, err := newSCEPHandler(ctx, cfg, router, db, logger)
	if err != nil {
		return err
	}
	server := &http.Server{
		Handler:           withSCEP(routes(cmpHandler, crlHandler), cfg.SCEP.PathPrefix, scepHandler),
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	listeners, err := listen(cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	serveErrors := make(chan error, len(listeners))
	for _, listener := range listeners {
		logger.Info("CMP over HTTP listening", "address", listener.Addr().String(),
			"url", "http://"+listener.Addr().String()+cmpfrontend.WellKnownPath)
		go func() { serveErrors <- server.Serve(listener) }()
	}
	tcpListeners, err := listenTCP(cfg.TCP.Listen, embedded, logger)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		return err
	}
	tcpServer := &cmpfrontend.TCPServer{
		Router: router, Profile: cfg.TCP.Profile, HTTP: server.Handler,
		MaxMessageBytes: cfg.TCP.MaxMessageBytes, ReadTimeout: cfg.TCP.ReadTimeout, IdleTimeout: cfg.TCP.IdleTimeout,
		MaxConnsPerClient: cfg.TCP.MaxConnectionsPerClient, SyncWait: cfg.TCP.PollAfter, Logger: logger,
	}
	for _, listener := range tcpListeners {
		logger.Info("CMP over TCP listening", "address", listener.Addr().String(), "framings", "rfc2510, tcp-v10, http")
		go func() {
			if err := tcpServer.Serve(listener); err != nil && !errors.Is(err, net.ErrClosed) {
				serveErrors <- err
			}
		}()
		defer listener.Close()
	}
	go deleteExpired(ctx, db, logger)

	logger.Info("certgate ready", "startup", time.Since(start).Round(time.Millisecond), "data_dir", cfg.DataDir)
	logFirstEnrollment(logger, cfg, listeners[0].Addr().String())
	logSCEPEnrollment(logger, cfg, scepHandler, listeners[0].Addr().String())

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-parent.Done():
		logger.Info("shutting down")
	case err := <-serveErrors:
		logger.Error("HTTP server failed", "error", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return server.Shutdown(shutdownCtx)
}

// routes dispatches by path prefix. http.ServeMux is not used because it redirects paths
// with repeated slashes, and CMP clients do not follow a redirect for POST, while
// RFC 3986 makes "/.well-known/cmp////" the same resource.
func routes(cmpHandler, crlHandler http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, cmpfrontend.WellKnownPath):
			cmpHandler.ServeHTTP(w, r)
		case r.URL.Path == cmpfrontend.CRLPath || strings.HasPrefix(r.URL.Path, cmpfrontend.CRLPath+"/"):
			crlHandler.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// listen opens every configured address before serving any, so that a port conflict
// stops the start with a clear message instead of leaving a half-started gateway.
func listen(addresses []string) ([]net.Listener, error) {
	var listeners []net.Listener
	for _, address := range addresses {
		listener, err := net.Listen("tcp", address)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("cannot listen on %s: %w; change http.listen in the configuration file", address, err)
		}
		listeners = append(listeners, listener)
	}
	return listeners, nil
}

// listenTCP opens the CMP TCP listeners. A port that cannot be bound stops the start,
// except on the embedded defaults, where port 829 needs privileges that a user trying
// certgate may not have.
func listenTCP(addresses []string, embedded bool, logger *slog.Logger) ([]net.Listener, error) {
	var listeners []net.Listener
	for _, address := range addresses {
		listener, err := net.Listen("tcp", address)
		if err == nil {
			listeners = append(listeners, listener)
			continue
		}
		why := "the port is in use or the address is not local"
		if errors.Is(err, syscall.EACCES) {
			why = "ports below 1024 need root or CAP_NET_BIND_SERVICE"
		}
		if embedded {
			logger.Warn("CMP over TCP is off: cannot listen", "address", address, "reason", why, "error", err,
				"fix", "run with a configuration file whose tcp.listen names another port, or grant the privilege")
			continue
		}
		for _, l := range listeners {
			l.Close()
		}
		return nil, fmt.Errorf("cannot listen for CMP over TCP on %s (%s): %w; change tcp.listen in the configuration file", address, why, err)
	}
	return listeners, nil
}

func deleteExpired(ctx context.Context, db store.Store, logger *slog.Logger) {
	ticker := time.NewTicker(cleanupInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			removed, err := db.DeleteExpired(ctx, now)
			if err != nil {
				logger.Warn("deleting expired transactions failed", "error", err)
			} else if removed > 0 {
				logger.Debug("deleted expired transactions and nonces", "rows", removed)
			}
		}
	}
}

// runningBackend is a started backend: a plugin process or an in-process backend.
type runningBackend interface {
	backends.Backend
	Close() error
}

// launchBackends starts every configured backend. It returns the ones it started even
// on error, so that the caller stops them.
func launchBackends(ctx context.Context, cfg *config.Config, logger *slog.Logger) (map[string]runningBackend, error) {
	launched := map[string]runningBackend{}
	self, err := os.Executable()
	if err != nil {
		return launched, fmt.Errorf("finding the certgate executable for built-in plugins: %w", err)
	}
	for i, b := range cfg.Backends {
		dataDir := filepath.Join(cfg.DataDir, b.Name)
		if builtin, ok := b.Builtin(); ok && builtin == "upstream-cmp" {
			upstreamConfig, err := parseUpstreamConfig(dataDir, b.Config)
			if err != nil {
				return launched, fmt.Errorf("backends[%d].config: %w", i, err)
			}
			backend, err := upstreamcmp.New(upstreamConfig, logger.With("backend", b.Name))
			if err != nil {
				return launched, fmt.Errorf("backend %q: %w", b.Name, err)
			}
			launched[b.Name] = backend
			logger.Info("backend started", "backend", b.Name, "plugin", b.Plugin, "upstream", upstreamConfig.Server)
			continue
		}
		spec := backends.PluginSpec{
			Name: b.Name, Path: b.Plugin, Args: b.Args, SHA256: b.SHA256,
			DataDir: dataDir, Config: b.Config, HealthInterval: b.HealthInterval,
		}
		if builtin, ok := b.Builtin(); ok {
			spec.Path, spec.Args, spec.SHA256 = self, []string{"plugin", builtin}, ""
		}
		backend, err := backends.LaunchPlugin(ctx, spec, logger)
		if err != nil {
			return launched, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		launched[b.Name] = backend
		logger.Info("backend started", "backend", b.Name, "plugin", b.Plugin, "pid", backend.Pid())
	}
	return launched, nil
}

// routerOptions builds the router's profiles, trust and responder from the configuration.
func routerOptions(ctx context.Context, cfg *config.Config, db store.Store, launched map[string]runningBackend, logger *slog.Logger) (*gateway.Options, error) {
	opts := &gateway.Options{
		Store:                db,
		Profiles:             map[string]*gateway.Profile{},
		DefaultProfile:       cfg.CMP.DefaultProfile,
		MessageTimeTolerance: cfg.CMP.MessageTimeTolerance,
		TransactionTimeout:   cfg.CMP.TransactionTimeout,
		Logger:               logger,
		TrustedRoots:         x509.NewCertPool(),
		Intermediates:        x509.NewCertPool(),
	}
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		loaded, err := p.LoadMACSecrets()
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", p.Name, err)
		}
		secrets := map[string][]byte{}
		for _, secret := range loaded {
			secrets[secret.Reference] = secret.Secret
		}
		keyTypes := map[string]bool{}
		for _, keyType := range p.KeyTypes {
			keyTypes[keyType] = true
		}
		opts.Profiles[p.Name] = &gateway.Profile{
			Name: p.Name, Backend: launched[p.Backend], BackendName: p.Backend,
			Validity: p.Validity, KeyTypes: keyTypes, ImplicitConfirm: p.ImplicitConfirm, RequireSubject: p.RequireSubject,
			SAN: gateway.SANPolicy{
				AllowDNS: p.SAN.AllowDNS, AllowIP: p.SAN.AllowIP, AllowEmail: p.SAN.AllowEmail,
				AllowURI: p.SAN.AllowURI, DNSSuffixes: p.SAN.DNSSuffixes,
			},
			MACSecrets:    secrets,
			TrustedRAs:    map[string]bool{},
			CentralKeyGen: p.CentralKeyGen.Enabled, CentralKeyType: p.CentralKeyGen.KeyType,
			KeyRecovery: p.CentralKeyGen.KeyRecovery,
		}
		if p.CentralKeyGen.Enabled && opts.ArchiveKey == nil {
			if opts.ArchiveKey, err = config.LoadArchiveKey(cfg.DataDir); err != nil {
				return nil, err
			}
		}
		for _, ra := range p.TrustedRAs {
			opts.Profiles[p.Name].TrustedRAs[ra] = true
		}
	}

	// Certificates issued by the gateway's own CAs may sign later requests (cr, kur, rr),
	// so every backend's chain is trusted in addition to the configured roots.
	for name, backend := range launched {
		chain, err := backend.CAChain(ctx)
		if err != nil {
			return nil, fmt.Errorf("backend %q: reading its CA chain: %w", name, err)
		}
		if len(chain) > 0 {
			opts.TrustedRoots.AddCert(chain[len(chain)-1])
			for _, cert := range chain[:len(chain)-1] {
				opts.Intermediates.AddCert(cert)
			}
		}
	}
	for _, file := range cfg.CMP.TrustedRootsFiles {
		if err := addPEMFile(opts.TrustedRoots, file); err != nil {
			return nil, fmt.Errorf("cmp.trusted_roots_files: %w", err)
		}
	}
	for _, file := range cfg.CMP.IntermediateFiles {
		if err := addPEMFile(opts.Intermediates, file); err != nil {
			return nil, fmt.Errorf("cmp.intermediate_files: %w", err)
		}
	}

	responder, err := loadResponder(ctx, cfg, opts.Profiles[cfg.CMP.DefaultProfile], logger)
	if err != nil {
		return nil, err
	}
	opts.Responder = responder
	return opts, nil
}

func addPEMFile(pool *x509.CertPool, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(data) {
		return fmt.Errorf("%s: no PEM certificate found", file)
	}
	return nil
}

// logFirstEnrollment logs how the operator enrolls against the default profile. It
// names the secret file, never the secret.
func logFirstEnrollment(logger *slog.Logger, cfg *config.Config, address string) {
	for _, p := range cfg.Profiles {
		if p.Name != cfg.CMP.DefaultProfile || len(p.MACSecrets) == 0 {
			continue
		}
		secret := p.MACSecrets[0]
		file := secret.SecretFile
		command := []string{"openssl cmp -cmd ir", "-server " + address, "-path .well-known/cmp"}
		if secret.Reference != "" {
			command = append(command, "-ref "+secret.Reference)
		}
		command = append(command, "-secret file:"+file, "-trusted "+filepath.Join(cfg.DataDir, p.Backend, "root.crt"),
			"-newkey device1.key -subject /CN=device1 -recipient /CN=certgate -certout device1.crt")
		logger.Info("enroll with a MAC secret", "profile", p.Name, "secret_file", file, "command", strings.Join(command, " "))
		return
	}
}

var errNoResponderBackend = errors.New("the default profile has no backend to issue the CMP responder certificate")
