// Command nova runs the Nova messaging service: serve, migrate, token, streams.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/nova-chat/nova"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/auth"
)

const usage = `usage: nova <command> [flags]

commands:
  serve     run one instance (public HTTP/WebSocket, admin listener, outbox relay)
  migrate   apply database migrations and exit
  token     print a JWT: nova token --user UUID [--ttl 24h]
  streams   print the fan-out and busiest conversation streams with their consumer groups
            (length, first/last id, consumers, pending, lag, oldest pending idle) and the
            outbox backlog: nova streams [--busiest 5]
  replay    write the messages stored since a time to one consumer group's replay stream
            (stream:fanout:replay:<group>), from Postgres, for another service to backfill:
            nova replay --group G --since 2026-11-01T00:00:00Z [--until T]
  healthcheck  exit 0 if this host's instance answers /healthz (for container health checks)
  version   print the version
  help      print this help (also: nova <command> --help)

flags (each also read from the environment variable named beside it):
`

// version is set at build time (-ldflags "-X main.version=v1.2.3"); else the module's.
var version = ""

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		nova.Usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		nova.Usage(stdout)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, "nova", versionString())
		return 0
	case "healthcheck":
		return healthcheck(os.Getenv("NOVA_HTTP_ADDR"), stderr)
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var user string
	var ttl time.Duration
	var busiest int
	if cmd == "token" {
		fs.StringVar(&user, "user", "", "user UUID the token names")
		fs.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	}
	var group, since, until string
	if cmd == "replay" {
		fs.StringVar(&group, "group", "", "the consumer group the replay is for (its stream: stream:fanout:replay:<group>)")
		fs.StringVar(&since, "since", "", "replay messages stored at or after this time (RFC 3339)")
		fs.StringVar(&until, "until", "", "and before this time (RFC 3339; default: up to now)")
	}
	if cmd == "streams" {
		fs.IntVar(&busiest, "busiest", 5, "how many of the busiest conversation streams to show")
	}
	if wantsHelp(rest) {
		commandHelp(cmd, fs, stdout)
		return 0
	}
	cfg, _, err := nova.LoadConfig(fs, rest, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "nova: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	redisstream.RouteLogs(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch cmd {
	case "serve":
		if cfg.JWTSecret == "" {
			fmt.Fprintln(stderr, "nova: NOVA_JWT_SECRET: required (at least 32 bytes; or NOVA_JWT_SECRET_FILE)")
			return 2
		}
		if err := refuseUnsupportedRedis(ctx, cfg); err != nil {
			fmt.Fprintf(stderr, "nova: REDIS_URL: %v\n", err)
			return 2
		}
		return exitCode(log, serve(ctx, cfg, log))
	case "migrate":
		return exitCode(log, migrate(ctx, cfg, log))
	case "token":
		return token(cfg, user, ttl, stdout, stderr)
	case "streams":
		return streams(ctx, cfg, busiest, stdout, stderr)
	case "replay":
		return replay(ctx, cfg, group, since, until, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "nova: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// commandHelp prints `nova <cmd> --help`: the command's own flags, then every setting.
func commandHelp(cmd string, fs *flag.FlagSet, stdout io.Writer) {
	fmt.Fprintf(stdout, "usage: nova %s [flags]\n\n", cmd)
	own := 0
	fs.VisitAll(func(*flag.Flag) { own++ })
	if own > 0 {
		fmt.Fprintln(stdout, "flags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprintln(stdout)
	}
	fmt.Fprintln(stdout, "settings (each also read from the environment variable named beside it):")
	nova.Usage(stdout)
}

func serve(ctx context.Context, cfg nova.Config, log *slog.Logger) error {
	srv, cleanup, err := nova.InitializeServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()
	return srv.Run(ctx)
}

func migrate(ctx context.Context, cfg nova.Config, log *slog.Logger) error {
	m, cleanup, err := nova.InitializeMigrator(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer cleanup()
	return m.Up(ctx, log)
}

func token(cfg nova.Config, user string, ttl time.Duration, stdout, stderr io.Writer) int {
	if cfg.JWTSecret == "" {
		fmt.Fprintln(stderr, "nova: NOVA_JWT_SECRET: required (at least 32 bytes; or NOVA_JWT_SECRET_FILE)")
		return 2
	}
	u, err := conversation.ParseUserID(user)
	if err != nil {
		fmt.Fprintln(stderr, "nova: --user: must be a UUID")
		return 2
	}
	if ttl <= 0 {
		fmt.Fprintln(stderr, "nova: --ttl: must be positive")
		return 2
	}
	t, err := auth.NewAuthenticator(cfg.JWTSecret).Issue(u, ttl)
	if err != nil {
		fmt.Fprintf(stderr, "nova: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, t)
	return 0
}

func exitCode(log *slog.Logger, err error) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	log.Error("nova stopped", "error", err)
	return 1
}

func newLogger(cfg nova.Config, w io.Writer) *slog.Logger {
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by LoadConfig; "" is info
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("instance_id", string(cfg.InstanceID))
}

// wantsHelp reports a -h, -help or --help among a command's arguments.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

// versionString is the build's version: set with -ldflags, else the module version and VCS
// revision the Go toolchain recorded, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// refuseUnsupportedRedis asks Redis, if it answers within 2 s, whether Nova can use it (not a
// cluster node reached through a redis:// URL, nor a cluster without partitions). An unreachable Redis is no reason to refuse: Nova starts and waits for it,
// and /readyz reports the same check once it answers.
func refuseUnsupportedRedis(ctx context.Context, cfg nova.Config) error {
	rdb, closeRedis, err := redisstream.NewClient(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer closeRedis()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := redisstream.CheckSupported(ctx, rdb, cfg.FanoutPartitions); errors.Is(err, redisstream.ErrClusterUnsupported) {
		return err
	}
	return nil
}

// healthcheck asks the instance on this host (NOVA_HTTP_ADDR, default :8080) for /healthz:
// exit 0 if it answers 200 within 2 s. Container images without curl use it.
func healthcheck(addr string, stderr io.Writer) int {
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "nova: NOVA_HTTP_ADDR: %v\n", err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "nova: unhealthy: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "nova: unhealthy: /healthz answered %d\n", resp.StatusCode)
		return 1
	}
	return 0
}
