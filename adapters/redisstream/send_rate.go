package redisstream

import (
	"context"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// SendRateLimiter counts each user's sends across every instance: a GCRA bucket per user in
// Redis (go-redis/redis_rate; one key, rate:send:{user_id}, so it is cluster-safe), one round
// trip per send. perSecond sends a second, burst at once.
type SendRateLimiter struct {
	lim   *redis_rate.Limiter
	limit redis_rate.Limit
}

func NewSendRateLimiter(client redis.UniversalClient, perSecond float64, burst int) *SendRateLimiter {
	if client == nil || perSecond <= 0 {
		panic("redisstream.NewSendRateLimiter: nil client or no rate")
	}
	// redis_rate takes whole events per period; any period with the same ratio is the same
	// bucket, so a fractional rate (0.5/s) becomes 500 per 1,000 s
	return &SendRateLimiter{lim: redis_rate.NewLimiter(client), limit: redis_rate.Limit{
		Rate: max(1, int(math.Round(perSecond*1000))), Period: 1000 * time.Second, Burst: max(1, burst)}}
}

// Allow takes one send from user's bucket; false when the user is over the rate.
func (l *SendRateLimiter) Allow(ctx context.Context, user string) (bool, error) {
	res, err := l.lim.Allow(ctx, "send:"+user, l.limit)
	if err != nil {
		return false, err
	}
	return res.Allowed > 0, nil
}
