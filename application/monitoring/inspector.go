package monitoring

import (
	"context"
	"sync"
	"time"
)

// InspectorOptions tune the Inspector; zero values take the defaults.
type InspectorOptions struct {
	Busiest int           // conversation streams to include (0: the default, 5; <0: none)
	Timeout time.Duration // per source (default 1.5 s): a scrape must not hang on a dead Redis
	MaxAge  time.Duration // how long a snapshot is served from cache (default 2 s; <0: never)
}

// Inspector gathers Snapshots. Scrapes, dashboard polls and API calls arriving within MaxAge of
// each other share one snapshot, so however many watchers there are, Redis and Postgres see at
// most one round of inspection queries per MaxAge.
type Inspector struct {
	streams StreamSource
	outbox  OutboxSource // may be nil: no outbox figures
	opts    InspectorOptions
	now     func() time.Time

	mu       sync.Mutex
	last     Snapshot
	inFlight chan struct{} // closed when the running inspection ends
}

func NewInspector(streams StreamSource, outbox OutboxSource, opts InspectorOptions) *Inspector {
	if streams == nil {
		panic("monitoring.NewInspector: nil stream source")
	}
	if opts.Busiest == 0 {
		opts.Busiest = 5
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 1500 * time.Millisecond
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = 2 * time.Second
	}
	return &Inspector{streams: streams, outbox: outbox, opts: opts, now: time.Now}
}

// Snapshot returns a snapshot at most MaxAge old, gathering a new one when needed.
func (in *Inspector) Snapshot(ctx context.Context) Snapshot {
	for {
		in.mu.Lock()
		if !in.last.At.IsZero() && in.opts.MaxAge > 0 && in.now().Sub(in.last.At) < in.opts.MaxAge {
			s := in.last
			in.mu.Unlock()
			return s
		}
		if wait := in.inFlight; wait != nil {
			in.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Snapshot{At: in.now(), RedisError: ctx.Err().Error(), PostgresError: ctx.Err().Error()}
			}
		}
		done := make(chan struct{})
		in.inFlight = done
		in.mu.Unlock()

		s := in.gather(context.WithoutCancel(ctx)) // one caller giving up must not spoil it for the others
		in.mu.Lock()
		in.last, in.inFlight = s, nil
		in.mu.Unlock()
		close(done)
		return s
	}
}

func (in *Inspector) gather(ctx context.Context) Snapshot {
	start := in.now()
	s := Snapshot{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(ctx, in.opts.Timeout)
		defer cancel()
		streams, err := in.streams.Streams(ctx, in.opts.Busiest)
		s.Streams, s.RedisUp = streams, err == nil
		if err != nil {
			s.RedisError = err.Error()
		}
	}()
	if in.outbox != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, in.opts.Timeout)
			defer cancel()
			o, err := in.outbox.Outbox(ctx)
			s.Outbox, s.PostgresUp = o, err == nil
			if err != nil {
				s.PostgresError = err.Error()
			}
		}()
	} else {
		s.PostgresError = "not configured"
	}
	wg.Wait()
	s.At = in.now()
	s.Took = s.At.Sub(start)
	return s
}
