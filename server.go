package nova

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/postgres"
)

// Server is one running instance: public listener, admin listener and outbox relay.
type Server struct {
	cfg      Config
	log      *slog.Logger
	migrator *postgres.Migrator
	public   *http.Server
	relay    *outbox.Relay
}

func NewServer(cfg Config, log *slog.Logger, migrator *postgres.Migrator, public *http.Server, relay *outbox.Relay) *Server {
	if log == nil || migrator == nil || public == nil || relay == nil {
		panic("nova.NewServer: nil dependency")
	}
	return &Server{cfg: cfg, log: log, migrator: migrator, public: public, relay: relay}
}

// Relay exposes the outbox relay (tests drive and inspect it).
func (s *Server) Relay() *outbox.Relay { return s.relay }

// Handler is the public HTTP handler (tests mount it on their own listener).
func (s *Server) Handler() http.Handler { return s.public.Handler }

// Migrate applies pending migrations; safe when several instances start at once.
func (s *Server) Migrate(ctx context.Context) error { return s.migrator.Up(ctx, s.log) }

const shutdownGrace = 15 * time.Second

// Run serves until ctx is cancelled (SIGTERM/SIGINT), then drains and returns nil.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	publicLn, err := net.Listen("tcp", s.public.Addr)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", string(s.cfg.AdminAddr))
	if err != nil {
		_ = publicLn.Close()
		return err
	}
	admin := &http.Server{Handler: adminMux(), ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("nova serving", "http", publicLn.Addr().String(), "admin", adminLn.Addr().String())

	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreClosed(s.public.Serve(publicLn)) })
	g.Go(func() error { return ignoreClosed(admin.Serve(adminLn)) })
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = s.relay.Run(relayCtx) }()
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		err := errors.Join(s.public.Shutdown(sctx), admin.Shutdown(sctx))
		stopRelay() // the relay last: it still moves what the drained requests committed
		<-relayDone
		return err
	})
	return g.Wait()
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
