package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// FanoutTrimmer trims the fan-out stream, each partition on its own, but never past an entry
// some consumer group has not acknowledged: it keeps everything from the oldest pending entry,
// or from the first entry a group has not been delivered yet, whichever is older. MAXLEN alone
// could drop unread work. Every command touches one partition's keys (one hash slot).
//
// Groups of other services declared in NOVA_FANOUT_GROUPS are created (from the stream's
// start) before each trim when missing: after Redis restarted empty, Nova recreates its own
// group at once, and trimming behind it alone would drop what those services have not read.
type FanoutTrimmer struct {
	client     redis.UniversalClient
	partitions FanoutPartitions
	declared   []string
}

// DeclaredGroups are NOVA_FANOUT_GROUPS: consumer groups of other services that Nova keeps.
type DeclaredGroups []string

func NewFanoutTrimmer(client redis.UniversalClient, partitions FanoutPartitions, declared DeclaredGroups) *FanoutTrimmer {
	if client == nil {
		panic("redisstream.NewFanoutTrimmer: nil client")
	}
	return &FanoutTrimmer{client: client, partitions: partitions, declared: declared}
}

// TrimEvery is how often Run trims.
const TrimEvery = 10 * time.Second

// Run trims the fan-out stream (every partition) behind its slowest consumer group every
// TrimEvery, while leads says this instance is the one to do it (the relay leader), until ctx
// ends.
func (t *FanoutTrimmer) Run(ctx context.Context, leads func() bool, log *slog.Logger) error {
	tick := time.NewTicker(TrimEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if !leads() {
			continue
		}
		if n, err := t.Trim(ctx); err != nil && ctx.Err() == nil {
			log.Warn("fan-out trim failed", "error", err)
		} else if n > 0 {
			log.Debug("fan-out stream trimmed", "entries", n)
		}
	}
}

// EnsureDeclaredGroups creates every declared group that does not exist on every partition,
// reading from the stream's start (BUSYGROUP: it exists, which is the usual answer).
func (t *FanoutTrimmer) EnsureDeclaredGroups(ctx context.Context) error {
	for _, stream := range t.partitions.Streams() {
		if err := t.ensureDeclared(ctx, stream); err != nil {
			return err
		}
	}
	return nil
}

// ensureDeclared creates the declared groups missing on one partition's stream.
func (t *FanoutTrimmer) ensureDeclared(ctx context.Context, stream string) error {
	for _, g := range t.declared {
		if err := ensureGroup(ctx, t.client, stream, g); err != nil {
			return fmt.Errorf("create declared consumer group %s on %s: %w", g, stream, err)
		}
	}
	return nil
}

// ensureGroup creates group on stream (and the stream), reading from its start, unless it
// exists (BUSYGROUP, the usual answer).
func ensureGroup(ctx context.Context, client redis.UniversalClient, stream, group string) error {
	err := client.XGroupCreateMkStream(ctx, stream, group, "0").Err()
	if err != nil && strings.Contains(err.Error(), "BUSYGROUP") {
		return nil
	}
	return err
}

// Trim removes, from every partition, the acknowledged entries older than every group's
// position there; it returns how many. A partition with no group at all is kept as it is
// (nothing says what was consumed). It goes on past a partition that fails and returns the
// first error.
func (t *FanoutTrimmer) Trim(ctx context.Context) (int64, error) {
	var total int64
	var firstErr error
	for _, stream := range t.partitions.Streams() {
		// a declared group that cannot be made sure of may not have read what trimming would
		// remove: that partition waits for the next round
		if err := t.ensureDeclared(ctx, stream); err != nil {
			firstErr = keepFirst(firstErr, err)
			continue
		}
		n, err := t.trim(ctx, stream)
		total += n
		firstErr = keepFirst(firstErr, err)
	}
	return total, firstErr
}

// trim trims one partition's stream and its index.
func (t *FanoutTrimmer) trim(ctx context.Context, stream string) (int64, error) {
	minID, err := t.SafeMinID(ctx, stream)
	if err != nil || minID == "" {
		return 0, err
	}
	n, err := t.client.XTrimMinID(ctx, stream, minID).Result()
	if err != nil {
		return n, fmt.Errorf("trim %s: %w", stream, err)
	}
	ms, _, _ := strings.Cut(minID, "-")
	return n, t.client.ZRemRangeByScore(ctx, fanoutIndexOf(stream), "-inf", "("+ms).Err()
}

// SafeMinID is the oldest id of stream (one partition) that must be kept, or "" when nothing
// can be trimmed.
func (t *FanoutTrimmer) SafeMinID(ctx context.Context, stream string) (string, error) {
	groups, err := t.client.XInfoGroups(ctx, stream).Result()
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
			p, err := t.client.XPending(ctx, stream, g.Name).Result()
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
