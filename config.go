// Package nova wires Nova's layers into a runnable instance (see wire.go and cmd/nova).
package nova

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/nova-chat/nova/adapters/postgres"
	"github.com/nova-chat/nova/adapters/redisstream"
	"github.com/nova-chat/nova/events"
	"github.com/nova-chat/nova/ports/auth"
	nhttp "github.com/nova-chat/nova/ports/http"
	"github.com/nova-chat/nova/ports/messaging"
	"github.com/nova-chat/nova/ports/ratelimit"
)

type (
	AdminAddr       string
	InstanceID      string
	AllowedOrigins  []string
	MaxConnsPerUser int
)

// Config is everything an instance is told from outside (PROTOCOL.md section 1).
type Config struct {
	DatabaseURL      postgres.DSN
	RedisURL         redisstream.URL
	HTTPAddr         nhttp.Addr
	AdminAddr        AdminAddr
	PprofAddr        string
	JWTSecret        auth.Secret
	InstanceID       InstanceID
	AllowedOrigins   AllowedOrigins
	StreamMaxLen     redisstream.StreamMaxLen
	PubSubCompat     redisstream.PubSubCompat
	FanoutPartitions redisstream.FanoutPartitions
	SendRate         ratelimit.SendRate
	MaxConnsPerUser  MaxConnsPerUser
	MaxSubscriptions int
	FanoutGroups     []string
	PingInterval     time.Duration
	Demo             bool
	LogFormat        string // "text" or "json"; "" picks by whether stderr is a terminal
	LogLevel         string // debug, info, warn or error
	LiveFeed         string // which Redis feed drives live delivery: interest (live channels) or fanout (A/B only)
	LiveRecheck      messaging.LiveRecheck
	Groups           redisstream.GroupConfig
}

// ConfigError names the variable that was wrong; cmd/nova prints it on one line and exits 2.
type ConfigError struct{ Variable, Problem string }

func (e *ConfigError) Error() string { return e.Variable + ": " + e.Problem }

type setting struct {
	env, def, usage string
	parse           func(c *Config, v string) error
}

var settings = []setting{
	{"DATABASE_URL", "postgres://localhost:5432/nova?sslmode=disable", "Postgres, the source of truth", func(c *Config, v string) error {
		if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
			return errors.New("must be a postgres:// URL")
		}
		c.DatabaseURL = postgres.DSN(v)
		return nil
	}},
	{"REDIS_URL", "redis://localhost:6379/0", "Redis: a redis:// URL, or comma-separated host:port seeds of a Redis Cluster (which needs NOVA_FANOUT_PARTITIONS > 1)", func(c *Config, v string) error {
		if strings.Contains(v, "://") && !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
			return errors.New("must be a redis:// URL or host:port seeds")
		}
		if !strings.Contains(v, "://") {
			for _, seed := range strings.Split(v, ",") {
				if _, _, err := net.SplitHostPort(seed); err != nil {
					return fmt.Errorf("seed %q is not host:port", seed)
				}
			}
		}
		c.RedisURL = redisstream.URL(v)
		return nil
	}},
	{"NOVA_HTTP_ADDR", ":8080", "public listener", func(c *Config, v string) error {
		c.HTTPAddr = nhttp.Addr(v)
		return checkAddr(v)
	}},
	{"NOVA_ADMIN_ADDR", "127.0.0.1:9090", "admin listener: /metrics, /admin, and /debug/pprof/ while it is loopback and NOVA_PPROF_ADDR is unset", func(c *Config, v string) error {
		c.AdminAddr = AdminAddr(v)
		return checkAddr(v)
	}},
	{"NOVA_PPROF_ADDR", "", "a listener of its own for /debug/pprof/ (default: on the admin listener while that one is loopback, else off)", func(c *Config, v string) error {
		c.PprofAddr = v
		if v == "" {
			return nil
		}
		return checkAddr(v)
	}},
	{"NOVA_JWT_SECRET", "", "HS256 secret, at least 32 bytes (required by serve and token)", func(c *Config, v string) error {
		if v != "" && len(v) < auth.MinSecretLen {
			return fmt.Errorf("must be at least %d bytes", auth.MinSecretLen)
		}
		c.JWTSecret = auth.Secret(v)
		return nil
	}},
	{"NOVA_JWT_SECRET_FILE", "", "a file holding the HS256 secret instead of NOVA_JWT_SECRET (which would show in the environment of the process); one trailing newline is ignored", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		if c.JWTSecret != "" {
			return errors.New("set NOVA_JWT_SECRET or NOVA_JWT_SECRET_FILE, not both")
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return fmt.Errorf("cannot read it: %w", err)
		}
		secret := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if len(secret) < auth.MinSecretLen {
			return fmt.Errorf("the file must hold at least %d bytes", auth.MinSecretLen)
		}
		c.JWTSecret = auth.Secret(secret)
		return nil
	}},
	{"NOVA_INSTANCE_ID", "", "consumer name in consumer groups and logs (default random)", func(c *Config, v string) error {
		if v == "" {
			b := make([]byte, 4)
			_, _ = rand.Read(b)
			v = "nova-" + hex.EncodeToString(b)
		}
		c.InstanceID = InstanceID(v)
		return nil
	}},
	{"NOVA_ALLOWED_ORIGINS", "", "comma-separated WebSocket origin patterns (default: same host only)", func(c *Config, v string) error {
		c.AllowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o == "*" {
				return errors.New(`"*" is not allowed; list the origins`)
			} else if o != "" {
				if err := checkOriginPattern(o); err != nil {
					return err
				}
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
		return nil
	}},
	{"NOVA_STREAM_MAXLEN", "1000", "approximate length kept per conversation stream", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return errors.New("must be a positive integer")
		}
		c.StreamMaxLen = redisstream.StreamMaxLen(n)
		return nil
	}},
	{"NOVA_PUBSUB_COMPAT", "true", "also publish every message on the legacy Pub/Sub channel", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		c.PubSubCompat = redisstream.PubSubCompat(b)
		return nil
	}},
	{"NOVA_FANOUT_PARTITIONS", "1", "partitions of the fan-out stream (1..1024): 1 keeps the one stream stream:fanout:all-conversations; more split it into stream:fanout:all-conversations:{p} by conversation, so no Redis script spans hash slots (Redis Cluster), and the outbox relay into as many shards spread over the instances; every instance and every consumer of the stream must use the same value", func(c *Config, v string) error {
		n, err := parseInt(v, 1, events.MaxPartitions)
		if err != nil {
			return err
		}
		c.FanoutPartitions = redisstream.FanoutPartitions(n)
		return nil
	}},
	{"NOVA_SEND_RATE", "20", "writes (sends, conversations created, participant changes) per second each user may make, across all instances (burst 5x); 0 turns the limit off", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > maxSendRate { // (ParseFloat takes "Inf" and "NaN")
			return fmt.Errorf("must be a number from 0 to %d (0 turns the limit off)", maxSendRate)
		}
		c.SendRate = ratelimit.SendRate(f)
		return nil
	}},
	{"NOVA_MAX_SUBSCRIPTIONS", "1000", "subscriptions one WebSocket connection may hold at once; a subscribe beyond them is answered with a rate_limited error frame", func(c *Config, v string) error {
		n, err := parseInt(v, 1, math.MaxInt)
		if err != nil {
			return err
		}
		c.MaxSubscriptions = n
		return nil
	}},
	{"NOVA_WS_PING_INTERVAL", "20s", "how often the server pings each WebSocket (a peer that does not answer within 10 s, or within the interval if shorter, is dropped) and re-checks its subscriptions' membership; when membership cannot be checked for 3 rounds (Postgres away) the connection is closed with 1001", func(c *Config, v string) error {
		return parseDuration(v, &c.PingInterval)
	}},
	{"NOVA_MAX_CONNS_PER_USER", "32", "WebSocket connections one user may hold at once, across all instances", func(c *Config, v string) error {
		n, err := parseInt(v, 1, math.MaxInt)
		if err != nil {
			return err
		}
		c.MaxConnsPerUser = MaxConnsPerUser(n)
		return nil
	}},
	{"NOVA_LIVE_FEED", "interest", "what drives live WebSocket delivery: interest (each instance hears only the conversations its clients follow) or fanout (every instance reads the whole fan-out stream; the pre-decision-6 design, kept for A/B runs)", func(c *Config, v string) error {
		if v != "interest" && v != "fanout" {
			return errors.New("must be interest or fanout")
		}
		c.LiveFeed = v
		return nil
	}},
	{"NOVA_LIVE_RECHECK", "5s", "how often conversations with recent live traffic are compared with their streams, so a live message Pub/Sub lost still arrives (all followed conversations every 12th round)", func(c *Config, v string) error {
		var d time.Duration
		if err := parseDuration(v, &d); err != nil {
			return err
		}
		c.LiveRecheck = messaging.LiveRecheck(d)
		return nil
	}},
	{"NOVA_CLAIM_IDLE", "30s", "a consumer-group entry pending this long is taken over from its (presumed dead) consumer", func(c *Config, v string) error {
		return parseDuration(v, &c.Groups.ClaimIdle)
	}},
	{"NOVA_CLAIM_INTERVAL", "5s", "how often each instance looks for such entries", func(c *Config, v string) error {
		return parseDuration(v, &c.Groups.ClaimInterval)
	}},
	{"NOVA_GROUP_BATCH_WAIT", "100ms", "after a consumer-group read that found less than a full batch (128), wait this long before the next, so entries arriving meanwhile are read, handled and acknowledged together; the delay of offline counters and other group work, never of live delivery", func(c *Config, v string) error {
		return parseDuration(v, &c.Groups.BatchWait)
	}},
	{"NOVA_GROUP_READERS", "owner", "with one fan-out partition, which instances read its new entries for the consumer groups: owner (the outbox relay leader; the others join in while it stalls or is NOVA_GROUP_HELP_AFTER entries behind, so an instance without subscribers spends nothing per message on group work until the leader needs help) or all (every instance always takes a share); with more partitions each partition is read the owner way by the leader of its relay shard", func(c *Config, v string) error {
		switch v {
		case "all", "owner":
			c.Groups.OwnerReadsAlone = v == "owner"
			return nil
		}
		return fmt.Errorf("%q is not all or owner", v)
	}},
	{"NOVA_GROUP_HELP_AFTER", "1000", "a consumer group's lag on a fan-out partition (entries not yet delivered to it, Redis 7+) from which the instances that do not own the partition read it too, until the lag is below it again (checked every few seconds); 0: they read it only when its owner stalls", func(c *Config, v string) error {
		n, err := parseInt(v, 0, math.MaxInt)
		if err != nil {
			return err
		}
		c.Groups.HelpAfter = n
		return nil
	}},
	{"NOVA_CONSUMER_TIMEOUT", "10m", "an idle consumer with nothing pending is removed from its group after this", func(c *Config, v string) error {
		return parseDuration(v, &c.Groups.ConsumerTimeout)
	}},
	{"NOVA_FANOUT_GROUPS", "", "comma-separated consumer groups of other services on the fan-out stream that Nova creates when missing (at start, after Redis restarted empty) and never trims past (see docs/EVENTS.md)", func(c *Config, v string) error {
		c.FanoutGroups = nil
		for _, g := range strings.Split(v, ",") {
			g = strings.TrimSpace(g)
			if g == "" {
				continue
			}
			if strings.ContainsAny(g, " \t\r\n") || len(g) > 200 {
				return fmt.Errorf("%q is not a group name", g)
			}
			c.FanoutGroups = append(c.FanoutGroups, g)
		}
		return nil
	}},
	{"NOVA_DEMO", "false", "serve the demo chat page at /demo/ with a development token endpoint that signs a token for any test user name: never in production", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		c.Demo = b
		return nil
	}},
	{"NOVA_LOG_FORMAT", "", "text or json (default: text on a terminal, else json)", func(c *Config, v string) error {
		if v != "" && v != "text" && v != "json" {
			return errors.New("must be text or json")
		}
		c.LogFormat = v
		return nil
	}},
	{"NOVA_LOG_LEVEL", "info", "debug, info, warn or error (debug adds one line per relayed conversation batch)", func(c *Config, v string) error {
		if v != "debug" && v != "info" && v != "warn" && v != "error" {
			return errors.New("must be debug, info, warn or error")
		}
		c.LogLevel = v
		return nil
	}},
}

// parseInt reads an integer from lo to hi (math.MaxInt: no upper bound).
func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	switch {
	case err == nil && n >= lo && n <= hi:
		return n, nil
	case hi < math.MaxInt:
		return 0, fmt.Errorf("must be an integer from %d to %d", lo, hi)
	case lo == 1:
		return 0, errors.New("must be a positive integer")
	}
	return 0, fmt.Errorf("must be an integer >= %d", lo)
}

func parseDuration(v string, dst *time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("must be a positive duration such as 30s")
	}
	*dst = d
	return nil
}

func checkAddr(v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return errors.New("must be host:port or :port")
	}
	return nil
}

// LoadConfig reads the environment, then flags of the same names in kebab case
// (NOVA_HTTP_ADDR -> --nova-http-addr). It returns the remaining arguments.
func LoadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, []string, error) {
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		values[s.env] = fs.String(flagName(s.env), v, s.usage+" (env "+s.env+")")
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, &ConfigError{Variable: "flags", Problem: err.Error()}
	}
	var c Config
	for _, s := range settings {
		if err := s.parse(&c, *values[s.env]); err != nil {
			return Config{}, nil, &ConfigError{Variable: s.env, Problem: err.Error()}
		}
	}
	if c.RedisURL.Cluster() && !c.FanoutPartitions.Split() {
		return Config{}, nil, &ConfigError{Variable: "NOVA_FANOUT_PARTITIONS",
			Problem: "Redis Cluster (REDIS_URL names seeds) needs more than 1 partition, e.g. 16: the unpartitioned fan-out keys share no hash slot"}
	}
	if c.LiveFeed == "fanout" && c.FanoutPartitions.Split() {
		return Config{}, nil, &ConfigError{Variable: "NOVA_LIVE_FEED",
			Problem: "fanout (the A/B reader of the whole fan-out stream) needs NOVA_FANOUT_PARTITIONS=1"}
	}
	return c, fs.Args(), nil
}

func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

// Usage lists the settings for --help.
func Usage(w io.Writer) {
	for _, s := range settings {
		// a default is shown once: in the usage text when it needs words, else from def
		if strings.Contains(s.usage, "(default") || s.def == "" {
			fmt.Fprintf(w, "  --%-26s %-24s %s\n", flagName(s.env), s.env, s.usage)
			continue
		}
		fmt.Fprintf(w, "  --%-26s %-24s %s (default %s)\n", flagName(s.env), s.env, s.usage, s.def)
	}
}

// maxSendRate bounds NOVA_SEND_RATE: the limiter counts in thousandths of a write, in an int.
const maxSendRate = 1_000_000

// checkOriginPattern refuses a WebSocket origin pattern that is malformed (path.Match syntax,
// which the WebSocket library matches "host" or, with "://", "scheme://host" against) or that
// admits any origin, such as "*.*" or "*://*": it would let every site's pages open WebSockets
// with their visitors' credentials.
func checkOriginPattern(p string) error {
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("origin pattern %q is malformed: %v", p, err)
	}
	const anyOrigin = "nova-origin-probe.example.invalid"
	for _, o := range []string{anyOrigin, "https://" + anyOrigin} {
		if ok, _ := path.Match(strings.ToLower(p), o); ok {
			return fmt.Errorf("origin pattern %q admits any origin; list the origins", p)
		}
	}
	return nil
}
