package nova

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadConfig(env map[string]string, args ...string) (Config, error) {
	c, _, err := LoadConfig(flag.NewFlagSet("test", flag.ContinueOnError), args, func(k string) string { return env[k] })
	return c, err
}

func TestTheJWTSecretCanComeFromAFile(t *testing.T) {
	dir := t.TempDir()
	secret := strings.Repeat("s", 40)
	good := filepath.Join(dir, "secret")
	if err := os.WriteFile(good, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := loadConfig(map[string]string{"NOVA_JWT_SECRET_FILE": good})
	if err != nil || string(c.JWTSecret) != secret {
		t.Fatalf("from a file: secret %q, error %v; want the file's content without its newline", c.JWTSecret, err)
	}
	c, err = loadConfig(nil, "--nova-jwt-secret-file", good)
	if err != nil || string(c.JWTSecret) != secret {
		t.Fatalf("from the flag: secret %q, error %v", c.JWTSecret, err)
	}

	for name, env := range map[string]map[string]string{
		"both":       {"NOVA_JWT_SECRET": secret, "NOVA_JWT_SECRET_FILE": good},
		"too short":  {"NOVA_JWT_SECRET_FILE": short},
		"no file":    {"NOVA_JWT_SECRET_FILE": filepath.Join(dir, "missing")},
		"short env":  {"NOVA_JWT_SECRET": "short"},
		"bad number": {"NOVA_STREAM_MAXLEN": "lots"},
		// a cluster's unpartitioned fan-out keys share no hash slot
		"cluster without partitions": {"REDIS_URL": "10.0.0.1:7000,10.0.0.2:7000", "NOVA_FANOUT_PARTITIONS": "1"},
	} {
		_, err := loadConfig(env)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v, want a ConfigError", name, err)
			continue
		}
		if _, named := env[ce.Variable]; !named || (name == "cluster without partitions" && ce.Variable != "NOVA_FANOUT_PARTITIONS") {
			t.Errorf("%s: the error names %s, want one of %v", name, ce.Variable, env)
		}
	}
}

func TestFanoutPartitionsAreAnIntegerFrom1To1024(t *testing.T) {
	c, err := loadConfig(nil)
	if err != nil || c.FanoutPartitions != 1 {
		t.Fatalf("default: %d, %v; want 1", c.FanoutPartitions, err)
	}
	for _, v := range []string{"1", "4", "1024"} {
		c, err := loadConfig(map[string]string{"NOVA_FANOUT_PARTITIONS": v})
		if err != nil || fmt.Sprint(c.FanoutPartitions) != v {
			t.Errorf("%s: got %d, %v", v, c.FanoutPartitions, err)
		}
	}
	for _, v := range []string{"0", "-1", "1025", "four", "2.5"} {
		_, err := loadConfig(map[string]string{"NOVA_FANOUT_PARTITIONS": v})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Variable != "NOVA_FANOUT_PARTITIONS" || !strings.Contains(ce.Problem, "1 to 1024") {
			t.Errorf("%s: error %v, want a ConfigError naming NOVA_FANOUT_PARTITIONS and its range", v, err)
		}
	}
	_, err = loadConfig(map[string]string{"NOVA_FANOUT_PARTITIONS": "4", "NOVA_LIVE_FEED": "fanout"})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Variable != "NOVA_LIVE_FEED" {
		t.Errorf("the A/B fan-out reader with partitions: %v, want a ConfigError naming NOVA_LIVE_FEED", err)
	}
}

func TestGroupReadersAreTheOwnerByDefaultOrAll(t *testing.T) {
	c, err := loadConfig(nil)
	if err != nil || !c.Groups.OwnerReadsAlone || c.Groups.HelpAfter != 1000 {
		t.Fatalf("default: owner first %v, help after %d, %v; want the owner first, helped from a lag of 1000",
			c.Groups.OwnerReadsAlone, c.Groups.HelpAfter, err)
	}
	c, err = loadConfig(map[string]string{"NOVA_GROUP_READERS": "all", "NOVA_GROUP_HELP_AFTER": "0"})
	if err != nil || c.Groups.OwnerReadsAlone || c.Groups.HelpAfter != 0 {
		t.Fatalf("all: owner first %v, help after %d, %v", c.Groups.OwnerReadsAlone, c.Groups.HelpAfter, err)
	}
	var ce *ConfigError
	for name, v := range map[string]string{"NOVA_GROUP_READERS": "leader", "NOVA_GROUP_HELP_AFTER": "-1"} {
		_, err = loadConfig(map[string]string{name: v})
		if !errors.As(err, &ce) || ce.Variable != name {
			t.Fatalf("%s=%s: error %v, want a ConfigError naming it", name, v, err)
		}
	}
}

func TestARedisClusterIsAcceptedWithPartitions(t *testing.T) {
	c, err := loadConfig(map[string]string{"REDIS_URL": "10.0.0.1:7000,10.0.0.2:7000", "NOVA_FANOUT_PARTITIONS": "16"})
	if err != nil || !c.RedisURL.Cluster() || c.FanoutPartitions != 16 {
		t.Fatalf("cluster seeds with 16 partitions: %+v, %v", c.RedisURL, err)
	}
}

func TestASendRateMustBeAFiniteNumberInRange(t *testing.T) {
	for v, want := range map[string]float64{"0": 0, "0.5": 0.5, "20": 20, "1000000": 1e6} {
		if c, err := loadConfig(map[string]string{"NOVA_SEND_RATE": v}); err != nil || float64(c.SendRate) != want {
			t.Errorf("%s: got %v, %v", v, c.SendRate, err)
		}
	}
	// "Inf" meant as "unlimited" overflowed the limiter into one write per 1,000 s
	for _, v := range []string{"-1", "Inf", "+Inf", "NaN", "1e20", "1000001", "fast"} {
		_, err := loadConfig(map[string]string{"NOVA_SEND_RATE": v})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Variable != "NOVA_SEND_RATE" || !strings.Contains(ce.Problem, "0 to 1000000") {
			t.Errorf("%s: error %v, want a ConfigError naming NOVA_SEND_RATE and its range", v, err)
		}
	}
}

func TestAnOriginPatternThatIsMalformedOrAdmitsAnyOriginIsRefused(t *testing.T) {
	c, err := loadConfig(map[string]string{"NOVA_ALLOWED_ORIGINS": "app.example.com, *.example.com,https://chat.example.org"})
	if err != nil || len(c.AllowedOrigins) != 3 {
		t.Fatalf("three good patterns: %v, %v", c.AllowedOrigins, err)
	}
	for _, v := range []string{"*", "*.*", "*://*", "https://*", "app.example.com,*", "[", "app.example.com,a[b"} {
		_, err := loadConfig(map[string]string{"NOVA_ALLOWED_ORIGINS": v})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Variable != "NOVA_ALLOWED_ORIGINS" {
			t.Errorf("%q: error %v, want a ConfigError naming NOVA_ALLOWED_ORIGINS", v, err)
		}
	}
}
