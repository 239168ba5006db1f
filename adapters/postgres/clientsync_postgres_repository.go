package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

const aggregateClientSync = "client_sync"

// clientSyncNamespace derives a stable aggregate id from a cursor's key (UUID v5).
var clientSyncNamespace = uuid.MustParse("6f0c2a8e-3c55-4c57-9a4e-0d3a1f7e9b21")

// ClientSyncRepository is the durable copy of the cursors, event-sourced like conversations.
type ClientSyncRepository struct{ pool *pgxpool.Pool }

func NewClientSyncRepository(pool *pgxpool.Pool) *ClientSyncRepository {
	if pool == nil {
		panic("postgres.NewClientSyncRepository: nil pool")
	}
	return &ClientSyncRepository{pool: pool}
}

var _ clientsync.Repository = (*ClientSyncRepository)(nil)

func aggregateID(k clientsync.Key) string {
	return uuid.NewSHA1(clientSyncNamespace, []byte(string(k.User)+"/"+string(k.Client)+"/"+string(k.Conversation))).String()
}

func (r *ClientSyncRepository) Update(ctx context.Context, key clientsync.Key, fn func(c *clientsync.ClientSync) error) error {
	var err error
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			c, err := r.load(ctx, tx, key)
			if err != nil {
				return err
			}
			if err := fn(c); err != nil {
				return err
			}
			return r.append(ctx, tx, c)
		})
		if !errors.Is(err, clientsync.ErrConcurrentUpdate) {
			return err
		}
	}
	return err
}

func (r *ClientSyncRepository) load(ctx context.Context, tx pgx.Tx, key clientsync.Key) (*clientsync.ClientSync, error) {
	var acked, version int64
	var at time.Time
	err := tx.QueryRow(ctx, `SELECT acked_seq, synced_at, version FROM client_sync
		WHERE user_id = $1 AND client_id = $2 AND conversation_id = $3 FOR UPDATE`,
		string(key.User), string(key.Client), string(key.Conversation)).Scan(&acked, &at, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return clientsync.New(key), nil
	}
	if err != nil {
		return nil, fmt.Errorf("load client sync: %w", err)
	}
	return clientsync.FromState(key, acked, at.UTC(), version), nil
}

func (r *ClientSyncRepository) append(ctx context.Context, tx pgx.Tx, c *clientsync.ClientSync) error {
	if !c.HasChanges() {
		return nil
	}
	k := c.Key()
	id := aggregateID(k)
	var b pgx.Batch
	version := c.PersistedVersion()
	for _, e := range c.Changes() {
		version++
		data, err := encodeAcknowledged(e)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, version, aggregateClientSync, uuid.Must(uuid.NewV7()).String(),
			e.EventType(), data, e.At)
	}
	b.Queue(`INSERT INTO client_sync (user_id, client_id, conversation_id, aggregate_id, acked_seq, synced_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (user_id, client_id, conversation_id) DO UPDATE
		SET acked_seq = EXCLUDED.acked_seq, synced_at = EXCLUDED.synced_at, version = EXCLUDED.version
		WHERE client_sync.version = $8`,
		string(k.User), string(k.Client), string(k.Conversation), id, c.AckedSeq(), c.SyncedAt(), c.Version(), c.PersistedVersion()).
		Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() != 1 {
				return clientsync.ErrConcurrentUpdate
			}
			return nil
		})
	err := tx.SendBatch(ctx, &b).Close()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return clientsync.ErrConcurrentUpdate
	}
	return err
}

func (r *ClientSyncRepository) AckedSeqs(ctx context.Context, user conversation.UserID, client clientsync.ClientID) (map[conversation.ID]int64, error) {
	rows, err := r.pool.Query(ctx, `SELECT conversation_id, acked_seq FROM client_sync WHERE user_id = $1 AND client_id = $2`,
		string(user), string(client))
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	out := map[conversation.ID]int64{}
	var conv string
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&conv, &seq}, func() error {
		out[conversation.ID(conv)] = seq
		return nil
	})
	return out, err
}
