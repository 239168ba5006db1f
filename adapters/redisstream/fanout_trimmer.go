package redisstream

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// FanoutTrimmer trims the fan-out stream, but never past an entry some consumer group has not
// acknowledged: it keeps everything from the oldest pending entry, or from the first entry a
// group has not been delivered yet, whichever is older. MAXLEN alone could drop unread work.
//
// Groups of other services declared in NOVA_FANOUT_GROUPS are created (from the stream's
// start) before each trim when missing: after Redis restarted empty, Nova recreates its own
// group at once, and trimming behind it alone would drop what those services have not read.
type FanoutTrimmer struct {
	client   redis.UniversalClient
	declared []string
}

// DeclaredGroups are NOVA_FANOUT_GROUPS: consumer groups of other services that Nova keeps.
type DeclaredGroups []string

func NewFanoutTrimmer(client redis.UniversalClient, declared DeclaredGroups) *FanoutTrimmer {
	if client == nil {
		panic("redisstream.NewFanoutTrimmer: nil client")
	}
	return &FanoutTrimmer{client: client, declared: declared}
}

// EnsureDeclaredGroups creates every declared group that does not exist, reading from the
// stream's start (BUSYGROUP: it exists, which is the usual answer).
func (t *FanoutTrimmer) EnsureDeclaredGroups(ctx context.Context) error {
	for _, g := range t.declared {
		err := t.client.XGroupCreateMkStream(ctx, FanoutStream, g, "0").Err()
		if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create declared consumer group %s: %w", g, err)
		}
	}
	return nil
}

// Trim removes acknowledged entries older than every group's position; it returns how many.
// With no group at all it keeps the stream as it is (nothing says what was consumed).
func (t *FanoutTrimmer) Trim(ctx context.Context) (int64, error) {
	if err := t.EnsureDeclaredGroups(ctx); err != nil {
		return 0, err
	}
	minID, err := t.SafeMinID(ctx)
	if err != nil || minID == "" {
		return 0, err
	}
	n, err := t.client.XTrimMinID(ctx, FanoutStream, minID).Result()
	if err != nil {
		return n, err
	}
	ms, _, _ := strings.Cut(minID, "-")
	return n, t.client.ZRemRangeByScore(ctx, FanoutIndex, "-inf", "("+ms).Err()
}

// SafeMinID is the oldest id that must be kept, or "" when nothing can be trimmed.
func (t *FanoutTrimmer) SafeMinID(ctx context.Context) (string, error) {
	groups, err := t.client.XInfoGroups(ctx, FanoutStream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return "", nil
		}
		return "", fmt.Errorf("xinfo groups: %w", err)
	}
	if len(groups) == 0 {
		return "", nil
	}
	keep := ""
	for _, g := range groups {
		candidate := nextID(g.LastDeliveredID)
		if g.Pending > 0 {
			p, err := t.client.XPending(ctx, FanoutStream, g.Name).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return "", fmt.Errorf("xpending %s: %w", g.Name, err)
			}
			if p != nil && p.Lower != "" {
				candidate = p.Lower
			}
		}
		if keep == "" || lessID(candidate, keep) {
			keep = candidate
		}
	}
	return keep, nil
}

// nextID is the smallest id after id ("5-3" -> "5-4").
func nextID(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return id
	}
	var n uint64
	_, _ = fmt.Sscan(seq, &n)
	return fmt.Sprintf("%s-%d", ms, n+1)
}

func lessID(a, b string) bool {
	var am, as, bm, bs uint64
	_, _ = fmt.Sscanf(a, "%d-%d", &am, &as)
	_, _ = fmt.Sscanf(b, "%d-%d", &bm, &bs)
	return am < bm || am == bm && as < bs
}
