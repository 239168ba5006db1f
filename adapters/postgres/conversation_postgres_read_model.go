package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/application/query"
	"github.com/nova-chat/nova/domain/conversation"
)

// ReadModel answers queries from the state rows and the messages table.
type ReadModel struct{ pool *pgxpool.Pool }

func NewReadModel(pool *pgxpool.Pool) *ReadModel {
	if pool == nil {
		panic("postgres.NewReadModel: nil pool")
	}
	return &ReadModel{pool: pool}
}

var _ query.ReadModel = (*ReadModel)(nil)

func (r *ReadModel) Conversation(ctx context.Context, id conversation.ID) (conversation.Snapshot, error) {
	c, err := loadConversation(ctx, r.pool, id)
	if err != nil {
		return conversation.Snapshot{}, err
	}
	return c.Snapshot(), nil
}

// ConversationsOf lists at most limit of user's conversations with ids above after ("": from
// the first), by id (UUIDv7: creation order), along the members table's primary key.
func (r *ReadModel) ConversationsOf(ctx context.Context, user conversation.UserID, after conversation.ID, limit int) ([]conversation.Snapshot, error) {
	rows, err := r.pool.Query(ctx, `SELECT c.id, c.title, c.participants, c.created_at, c.last_seq, c.version
		FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.user_id = $1 AND ($2::uuid IS NULL OR m.conversation_id > $2::uuid)
		ORDER BY m.conversation_id LIMIT $3`, string(user), nullIfEmpty(string(after)), limit)
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (conversation.Snapshot, error) {
		var s conversation.Snapshot
		var participants []string
		err := row.Scan((*string)(&s.ID), &s.Title, &participants, &s.CreatedAt, &s.LastSeq, &s.Version)
		s.Participants = make([]conversation.UserID, len(participants))
		for i, p := range participants {
			s.Participants[i] = conversation.UserID(p)
		}
		s.CreatedAt = s.CreatedAt.UTC()
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	return out, nil
}

const messageColumns = `id, conversation_id, seq, sender_id, client_msg_id, body, created_at`

// LastSeqs returns the last committed seq of each of the conversations that exist, in one
// query (messaging.DurableTops: what the live listener compares with after a reconnect).
func (r *ReadModel) LastSeqs(ctx context.Context, ids []conversation.ID) (map[conversation.ID]int64, error) {
	byText := make(map[string]conversation.ID, len(ids))
	texts := make([]string, len(ids))
	for i, id := range ids {
		texts[i] = strings.ToLower(string(id))
		byText[texts[i]] = id
	}
	rows, err := r.pool.Query(ctx, `SELECT id::text, last_seq FROM conversations WHERE id = ANY($1::uuid[])`, texts)
	if err != nil {
		return nil, fmt.Errorf("read last seqs: %w", err)
	}
	out := make(map[conversation.ID]int64, len(ids))
	var (
		id  string
		seq int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
		out[byText[id]] = seq
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read last seqs: %w", err)
	}
	return out, nil
}

func (r *ReadModel) MessagesAfter(ctx context.Context, id conversation.ID, afterSeq int64, limit int) ([]conversation.Message, error) {
	return queryMessages(ctx, r.pool, `SELECT `+messageColumns+` FROM messages
		WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, string(id), afterSeq, limit)
}

func (r *ReadModel) MessagesBefore(ctx context.Context, id conversation.ID, beforeSeq int64, limit int) ([]conversation.Message, error) {
	return queryMessages(ctx, r.pool, `SELECT `+messageColumns+` FROM messages
		WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, string(id), beforeSeq, limit)
}

func findMessageByClientID(ctx context.Context, pool *pgxpool.Pool, id conversation.ID, sender conversation.UserID, clientMsgID string) (*conversation.Message, error) {
	msgs, err := queryMessages(ctx, pool, `SELECT `+messageColumns+` FROM messages
		WHERE conversation_id = $1 AND sender_id = $2 AND client_msg_id = $3`, string(id), string(sender), clientMsgID)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, conversation.ErrNotFound
	}
	return &msgs[0], nil
}

func queryMessages(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) ([]conversation.Message, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, scanMessage)
	if err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	return msgs, nil
}

func scanMessage(row pgx.CollectableRow) (conversation.Message, error) {
	var m conversation.Message
	var body string
	if err := row.Scan(&m.ID, (*string)(&m.ConversationID), &m.Seq, (*string)(&m.SenderID), &m.ClientMsgID, &body, &m.CreatedAt); err != nil {
		return m, err
	}
	m.Body = []byte(body)
	m.StreamID = conversation.StreamID(m.Seq)
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// MessagesCreatedSince pages through every conversation's messages stored at or after since,
// in (created_at, conversation, seq) order, after the message after (nil: from the start). It
// scans the messages table (no index on created_at: the send path does not pay for one), so it
// serves rare jobs such as `nova replay`, not requests.
func (r *ReadModel) MessagesCreatedSince(ctx context.Context, since time.Time, after *conversation.Message, limit int) ([]conversation.Message, error) {
	if after == nil {
		return queryMessages(ctx, r.pool, `SELECT `+messageColumns+` FROM messages
			WHERE created_at >= $1 ORDER BY created_at, conversation_id, seq LIMIT $2`, since, limit)
	}
	return queryMessages(ctx, r.pool, `SELECT `+messageColumns+` FROM messages
		WHERE (created_at, conversation_id, seq) > ($1, $2::uuid, $3)
		ORDER BY created_at, conversation_id, seq LIMIT $4`, after.CreatedAt, string(after.ConversationID), after.Seq, limit)
}
