package testinfra

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nova-chat/nova"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/auth"
)

// JWTSecret is the secret every test instance uses.
const JWTSecret = "test-secret-0123456789-0123456789-abcdef"

// Instance is one in-process Nova (HTTP on an httptest server, relay running).
type Instance struct {
	URL    string
	Server *nova.Server
	Config nova.Config
}

// Env names what instances share.
type Env struct {
	DatabaseURL string
	RedisURL    string
	Settings    map[string]string // more NOVA_* settings, e.g. NOVA_SEND_RATE
	Log         io.Writer         // if set, the instance logs there (Info and above), as text
}

// StartInstance wires a Nova instance exactly as `nova serve` does and serves its public port.
func StartInstance(t testing.TB, env Env) *Instance {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL":    env.DatabaseURL,
		"REDIS_URL":       env.RedisURL,
		"NOVA_JWT_SECRET": JWTSecret,
		"NOVA_SEND_RATE":  "0",
		"NOVA_HTTP_ADDR":  "127.0.0.1:0",
		"NOVA_ADMIN_ADDR": "127.0.0.1:0",
	}
	for k, v := range env.Settings {
		vars[k] = v
	}
	cfg, _, err := nova.LoadConfig(flag.NewFlagSet("test", flag.ContinueOnError), nil, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if env.Log != nil {
		log = slog.New(slog.NewTextHandler(env.Log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, cleanup, err := nova.InitializeServer(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Migrate(ctx); err != nil {
		cancel()
		cleanup()
		t.Fatal(err)
	}
	bgDone := make(chan struct{})
	go func() { defer close(bgDone); srv.RunBackground(ctx) }()
	hs := httptest.NewUnstartedServer(srv.Handler())
	srv.ApplyLimits(hs.Config)
	hs.Start()
	t.Cleanup(func() {
		sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		srv.WebSockets().Shutdown(sctx)
		hs.Close()
		cancel()
		<-bgDone
		cleanup()
	})
	// ready as a started process is: the background parts (the consumer groups) run too
	Eventually(t, 20*time.Second, "the instance answers /readyz with 200", func() bool {
		resp, err := http.Get(hs.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return &Instance{URL: hs.URL, Server: srv, Config: cfg}
}

// Token signs a JWT for user with the test secret.
func Token(t testing.TB, user conversation.UserID) string {
	t.Helper()
	tok, err := auth.NewAuthenticator(JWTSecret).Issue(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
