package redisstream

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nova-chat/nova/domain/conversation"
)

// PresenceTTL is how long an instance's claim that a user is online lasts without a heartbeat,
// so a crashed instance's users go offline by themselves.
const PresenceTTL = 30 * time.Second

// Presence records which users hold a live connection anywhere, and how many: the hash
// presence:{user_id} has, per instance, a field <instance> valued with the time (ms) until which
// that instance vouches for the user, and a field #<instance> with its connection count. The
// counts of instances still vouching make NOVA_MAX_CONNS_PER_USER hold across the deployment.
type Presence struct {
	client   redis.UniversalClient
	instance string
}

//go:embed admit_connection.lua
var admitConnectionLua string

var admitConnection = redis.NewScript(admitConnectionLua)

func NewPresence(client redis.UniversalClient, instance ConsumerName) *Presence {
	if client == nil {
		panic("redisstream.NewPresence: nil client")
	}
	return &Presence{client: client, instance: string(instance)}
}

func presenceKey(u conversation.UserID) string { return "presence:" + string(u) }

func (p *Presence) countField() string { return "#" + p.instance }

func vouchedUntil() string { return strconv.FormatInt(time.Now().Add(PresenceTTL).UnixMilli(), 10) }

// Admit records one more connection of u here, unless u's connections on every instance
// would then exceed limit (false: refused, nothing recorded).
func (p *Presence) Admit(ctx context.Context, u conversation.UserID, limit int) (bool, error) {
	n, err := admitConnection.Run(ctx, p.client, []string{presenceKey(u)}, p.instance, time.Now().UnixMilli(),
		vouchedUntil(), limit, PresenceTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("admit connection: %w", err)
	}
	return n == 1, nil
}

// Vouch marks users online from this instance until now + PresenceTTL (a heartbeat), with the
// number of connections each holds here (which also repairs a count that drifted, e.g. while
// Redis was away).
func (p *Presence) Vouch(ctx context.Context, conns map[conversation.UserID]int) error {
	until := vouchedUntil()
	pipe := p.client.Pipeline()
	for u, n := range conns {
		pipe.HSet(ctx, presenceKey(u), p.instance, until, p.countField(), n)
		pipe.PExpire(ctx, presenceKey(u), PresenceTTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Release records that u holds left connections here; with none left, this instance's claim
// is withdrawn.
func (p *Presence) Release(ctx context.Context, u conversation.UserID, left int) error {
	if left > 0 {
		return p.client.HSet(ctx, presenceKey(u), p.countField(), left).Err()
	}
	return p.client.HDel(ctx, presenceKey(u), p.instance, p.countField()).Err()
}
