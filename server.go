package nova

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nova-chat/nova/adapters/outbox"
	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/application/delivery"
	"github.com/nova-chat/nova/ports/admin"
	"github.com/nova-chat/nova/ports/messaging"
	"github.com/nova-chat/nova/ports/websocket"
)

// Background is everything an instance runs besides its listeners.
type Background struct {
	Relay    *outbox.Relay
	FastPath *outbox.FastPath
	Fanout   *messaging.FanoutListener
	Live     *messaging.LiveListener
	Channels *redisstream.LiveChannels
	Router   *messaging.Router
	Trimmer  *redisstream.FanoutTrimmer
	Hub      *delivery.Hub
}

// Server is one running instance: public listener, admin listener, outbox relay, live feeds.
type Server struct {
	cfg      Config
	log      *slog.Logger
	migrator *postgres.Migrator
	public   *http.Server
	ws       *websocket.Handler
	admin    *admin.Admin
	bg       Background
}

func NewServer(cfg Config, log *slog.Logger, migrator *postgres.Migrator, public *http.Server,
	ws *websocket.Handler, adm *admin.Admin, bg Background) *Server {
	if log == nil || migrator == nil || public == nil || ws == nil || adm == nil || bg.Relay == nil || bg.FastPath == nil || bg.Fanout == nil ||
		bg.Live == nil || bg.Channels == nil || bg.Router == nil || bg.Trimmer == nil || bg.Hub == nil {
		panic("nova.NewServer: nil dependency")
	}
	return &Server{cfg: cfg, log: log, migrator: migrator, public: public, ws: ws, admin: adm, bg: bg}
}

// Background exposes the relay, listeners and hub (tests drive and inspect them).
func (s *Server) Background() Background { return s.bg }

// Handler is the public HTTP handler (tests mount it on their own listener).
func (s *Server) Handler() http.Handler { return s.public.Handler }

// ApplyLimits gives another http.Server (a test's) the public listener's header limits and timeouts.
func (s *Server) ApplyLimits(hs *http.Server) {
	hs.MaxHeaderBytes, hs.ReadHeaderTimeout, hs.IdleTimeout = s.public.MaxHeaderBytes, s.public.ReadHeaderTimeout, s.public.IdleTimeout
}

// WebSockets is the WebSocket port (for shutdown by tests that mount Handler themselves).
func (s *Server) WebSockets() *websocket.Handler { return s.ws }

// Migrate applies pending migrations; safe when several instances start at once.
func (s *Server) Migrate(ctx context.Context) error { return s.migrator.Up(ctx, s.log) }

const shutdownGrace = 15 * time.Second

// RunBackground runs the relay and the live feeds until ctx ends.
func (s *Server) RunBackground(ctx context.Context) {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.bg.Relay.Run(ctx) })
	g.Go(func() error { return s.bg.FastPath.Run(ctx) })
	g.Go(func() error { return s.bg.Fanout.Run(ctx) })
	g.Go(func() error { return s.bg.Live.Run(ctx) })
	g.Go(func() error { return s.bg.Router.Run(ctx) })
	g.Go(func() error { return s.ws.RunPresence(ctx) })
	g.Go(func() error { return s.bg.Trimmer.Run(ctx, s.bg.Relay.LeadsFirstShard, s.log) })
	if err := g.Wait(); err != nil {
		s.log.Error("background work stopped", "error", err)
	}
}

// Run serves until ctx is cancelled (SIGTERM/SIGINT), then drains and returns nil:
// it stops accepting, closes WebSockets with 1001, finishes in-flight requests, and stops the
// relay last so that what those requests committed still reaches Redis.
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
	onAdmin := admin.PprofOnAdmin(string(s.cfg.AdminAddr), s.cfg.PprofAddr)
	adminSrv := &http.Server{Handler: s.AdminHandler(onAdmin), ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("nova serving", "http", publicLn.Addr().String(), "admin", adminLn.Addr().String())
	var pprofLn net.Listener
	pprofSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	switch {
	case s.cfg.PprofAddr != "":
		if pprofLn, err = net.Listen("tcp", s.cfg.PprofAddr); err != nil {
			_, _ = publicLn.Close(), adminLn.Close()
			return err
		}
		mux := http.NewServeMux()
		admin.RegisterPprof(mux)
		pprofSrv.Handler = mux
		s.log.Info("profiler on its own listener", "pprof", pprofLn.Addr().String())
	case !onAdmin:
		s.log.Info("profiler off: the admin listener is not loopback; set NOVA_PPROF_ADDR to serve it on a listener of its own")
	}

	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	bgDone := make(chan struct{})
	go func() { defer close(bgDone); s.RunBackground(bgCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreClosed(s.public.Serve(publicLn)) })
	g.Go(func() error { return ignoreClosed(adminSrv.Serve(adminLn)) })
	if pprofLn != nil {
		g.Go(func() error { return ignoreClosed(pprofSrv.Serve(pprofLn)) })
	}
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		s.ws.Shutdown(sctx)
		err := errors.Join(s.public.Shutdown(sctx), adminSrv.Shutdown(sctx), pprofSrv.Shutdown(sctx))
		stopBackground()
		<-bgDone
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

// AdminHandler serves the admin listener: /metrics, /admin, /admin/api/*, and /debug/pprof/
// when withPprof. It is for operators only (NOVA_ADMIN_ADDR is loopback by default): nothing
// here authenticates.
func (s *Server) AdminHandler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	s.admin.Register(mux)
	if withPprof {
		admin.RegisterPprof(mux)
	}
	return mux
}
