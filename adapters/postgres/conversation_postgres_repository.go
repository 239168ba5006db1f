package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/internal/ctxsleep"
	"github.com/nova-chat/nova/internal/messagejson"
)

const (
	aggregateConversation = "conversation"
	// maxUpdateAttempts bounds the optimistic-concurrency retries of one Update.
	maxUpdateAttempts = 8
)

// CommittedMessage is a message whose transaction has committed, with its outbox row.
type CommittedMessage struct {
	OutboxID     int64
	Message      conversation.Message
	Payload      []byte   // the Message JSON, as stored in the outbox
	Participants []string // the conversation's participants after the transaction
}

// OutboxSignal hears of every commit that wrote outbox rows: the publish-after-commit fast
// path, which hands anything it cannot publish at once to the relay.
type OutboxSignal interface{ Committed(msgs []CommittedMessage) }

// ConversationRepository is the event store for conversations. Every append also updates, in the
// same transaction, the compact state row (so loading is O(1)), the read models and the outbox.
type ConversationRepository struct {
	pool   *pgxpool.Pool
	signal OutboxSignal
	cache  *stateCache
	group  *groupCommitter
	posts  *postBatcher
}

func NewConversationRepository(pool *pgxpool.Pool, signal OutboxSignal) *ConversationRepository {
	if pool == nil || signal == nil {
		panic("postgres.NewConversationRepository: nil dependency")
	}
	r := &ConversationRepository{pool: pool, signal: signal, cache: newStateCache()}
	r.group = newGroupCommitter(r)
	r.posts = newPostBatcher(pool)
	return r
}

var _ conversation.Repository = (*ConversationRepository)(nil)

// Create appends a new conversation's events, its state row and read models in one transaction,
// one round trip.
func (r *ConversationRepository) Create(ctx context.Context, c *conversation.Conversation) error {
	var committed []CommittedMessage
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if err := queueAppend(b, c, true, &committed); err != nil {
		return err
	}
	b.Queue("COMMIT")
	if err := SendTransaction(ctx, r.pool, b); err != nil {
		return r.writeError(ctx, err, c.Changes())
	}
	r.committed(c, committed)
	return nil
}

func (r *ConversationRepository) Get(ctx context.Context, id conversation.ID) (*conversation.Conversation, error) {
	return loadConversation(ctx, r.pool, id)
}

// GroupCommitStats reads the locked writes' group transactions since start.
func (r *ConversationRepository) GroupCommitStats() GroupCommitStats { return r.group.Stats() }

// PostBatchStats reads the one-statement sends' batches since start.
func (r *ConversationRepository) PostBatchStats() PostBatchStats { return r.posts.Stats() }

// Update runs fn on the conversation and appends what it recorded. When fn posts one message and
// this instance wrote the conversation last, fn runs on the state it remembers and the append is
// one round trip, conditional on the state row still being at that version (postStatement
// writes nothing if anyone else wrote since). Otherwise, and after any failure on remembered
// state (stale, or a decision that fresh state might change: a sender no longer a participant, a
// repeated client_msg_id), the conversation is loaded under a row lock, so concurrent senders
// queue instead of failing (in a group transaction with the other locked writes waiting, see
// group_commit.go), and a conflict is retried with a fresh aggregate a bounded number of times. Before taking the lock, unless the conversation is contended, fn decides on a
// fresh read without it: a request that fresh state refuses (a non-participant, a bad
// argument) never holds the row lock, so it cannot slow the conversation's real senders down.
func (r *ConversationRepository) Update(ctx context.Context, id conversation.ID, fn func(c *conversation.Conversation) error) error {
	if done, err := r.updateRemembered(ctx, id, fn); done {
		return err
	}
	if done, err := r.updateFresh(ctx, id, fn); done {
		return err
	}
	var err error
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		if err = r.group.write(ctx, id, fn); errors.Is(err, errGroupFailed) {
			err = r.writeAlone(ctx, id, fn)
		}
		if !errors.Is(err, conversation.ErrConcurrentUpdate) {
			return err
		}
		if err := ctxsleep.Sleep(ctx, time.Duration(rand.IntN(1+attempt*2))*time.Millisecond); err != nil {
			return err
		}
	}
	return err
}

// updateRemembered tries a send on remembered state; done is false when the locked way must
// decide it. Writers of one conversation on this instance queue here, so they do not make each
// other's remembered state stale; the locked way queues in Postgres instead.
func (r *ConversationRepository) updateRemembered(ctx context.Context, id conversation.ID, fn func(c *conversation.Conversation) error) (done bool, err error) {
	r.cache.lockWriter(id)
	defer r.cache.unlockWriter(id)
	st, ok := r.cache.get(id)
	if !ok {
		return false, nil
	}
	c := conversation.FromSnapshot(st)
	if err = fn(c); err == nil && isOnePost(c) {
		if err = r.appendRemembered(ctx, c); err == nil {
			return true, nil
		}
	}
	if ctx.Err() != nil {
		return true, err
	}
	if errors.Is(err, errStale) {
		r.cache.stale(id)
	} else {
		r.cache.forget(id)
	}
	return false, nil
}

// updateFresh decides on a fresh read of the state row, without the row lock, unless the
// conversation is contended (then the locked way queues in Postgres at once). A refusal is
// final (done): a non-participant or a bad argument never takes the lock. A send is appended
// by the same conditional statement as on remembered state; if the state moved on meanwhile,
// or anything else is not decided here, the locked way follows (done is false).
func (r *ConversationRepository) updateFresh(ctx context.Context, id conversation.ID, fn func(c *conversation.Conversation) error) (done bool, err error) {
	if r.cache.isContended(id) {
		return false, nil
	}
	fresh, err := r.Get(ctx, id)
	if err != nil {
		return true, err
	}
	if err := fn(fresh); err != nil {
		return true, err
	}
	if !isOnePost(fresh) {
		return false, nil
	}
	err = r.appendRemembered(ctx, fresh)
	if err == nil || ctx.Err() != nil {
		return true, err
	}
	if errors.Is(err, errStale) {
		r.cache.stale(id)
	}
	return false, nil
}

// errStale: the state row's version was not the one a send was decided on (someone else wrote
// the conversation since), so postStatement wrote nothing.
var errStale = errors.New("conversation state changed since it was read")

func isOnePost(c *conversation.Conversation) bool {
	_, ok := onePost(c)
	return ok
}

// onePost returns c's one recorded change when it is a MessagePosted (a send: what
// postStatement writes), and false for anything else.
func onePost(c *conversation.Conversation) (conversation.MessagePosted, bool) {
	changes := c.Changes()
	if len(changes) != 1 {
		return conversation.MessagePosted{}, false
	}
	posted, ok := changes[0].(conversation.MessagePosted)
	return posted, ok
}

// appendRemembered appends a send decided on remembered (or fresh) state: postStatement alone,
// in one round trip, or in one batch with the sends of other conversations that wait for
// Postgres at the same moment (post_batcher.go). A batch is one transaction, committed (with
// synchronous_commit) before the reply. When the state row has moved on, nothing is written
// (errStale); other errors are returned as Postgres reported them to the send alone.
func (r *ConversationRepository) appendRemembered(ctx context.Context, c *conversation.Conversation) error {
	committed, err := r.posts.post(ctx, c)
	if errors.Is(err, errGroupFailed) {
		committed, err = r.posts.alone(ctx, c)
	}
	if err != nil {
		return err
	}
	r.committed(c, committed)
	return nil
}

// committed remembers the state just written and hands its messages to the fast path.
func (r *ConversationRepository) committed(c *conversation.Conversation, msgs []CommittedMessage) {
	r.cache.put(c.Snapshot())
	if len(msgs) > 0 {
		r.signal.Committed(msgs)
	}
}

// writeError names what a failed write batch ran into.
func (r *ConversationRepository) writeError(ctx context.Context, err error, changes []conversation.Event) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return err
	}
	switch pgErr.ConstraintName {
	case "events_pkey":
		return conversation.ErrConcurrentUpdate
	case "messages_conversation_id_sender_id_client_msg_id_key":
		for _, e := range changes {
			if posted, ok := e.(conversation.MessagePosted); ok {
				return r.duplicateOf(ctx, posted.Message)
			}
		}
	}
	return err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const (
	selectConversation  = `SELECT id, title, participants, created_at, last_seq, version FROM conversations WHERE id = $1`
	selectConversations = `SELECT id, title, participants, created_at, last_seq, version FROM conversations WHERE id = ANY($1::uuid[])`
)

func loadConversation(ctx context.Context, q querier, id conversation.ID) (*conversation.Conversation, error) {
	return scanConversation(q.QueryRow(ctx, selectConversation, string(id)), id)
}

func scanConversation(row pgx.Row, id conversation.ID) (*conversation.Conversation, error) {
	var s conversation.Snapshot
	var participants []string
	err := row.Scan((*string)(&s.ID), &s.Title, &participants, &s.CreatedAt, &s.LastSeq, &s.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, conversation.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load conversation %s: %w", id, err)
	}
	s.Participants = make([]conversation.UserID, len(participants))
	for i, p := range participants {
		s.Participants[i] = conversation.UserID(p)
	}
	s.CreatedAt = s.CreatedAt.UTC()
	return conversation.FromSnapshot(s), nil
}

// queueAppend queues the recorded events, the state row, the read models and the outbox.
func queueAppend(b *pgx.Batch, c *conversation.Conversation, isNew bool, out *[]CommittedMessage) error {
	if !isNew && isOnePost(c) {
		return queuePost(b, c, out)
	}
	version := c.PersistedVersion()
	for _, e := range c.Changes() {
		version++
		data, err := encodeConversationEvent(e)
		if err != nil {
			return fmt.Errorf("encode %s: %w", e.EventType(), err)
		}
		b.Queue(`INSERT INTO events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			string(c.ID()), version, aggregateConversation, uuid.Must(uuid.NewV7()).String(), e.EventType(), data, time.Now().UTC())
		if err := queueProjection(b, e, userIDs(c.Participants()), out); err != nil {
			return err
		}
	}
	s := c.Snapshot()
	if isNew {
		b.Queue(`INSERT INTO conversations (id, title, participants, created_at, last_seq, version)
			VALUES ($1, $2, $3, $4, $5, $6)`, string(s.ID), s.Title, userIDs(s.Participants), s.CreatedAt, s.LastSeq, s.Version)
	} else {
		// the events primary key already refuses a stale version on the server; this keeps the row honest
		b.Queue(`UPDATE conversations SET title = $2, participants = $3, last_seq = $4, version = $5
			WHERE id = $1 AND version = $6`,
			string(s.ID), s.Title, userIDs(s.Participants), s.LastSeq, s.Version, c.PersistedVersion())
	}
	return nil
}

// postStatement is a send's every write in one statement (Postgres runs each data-modifying
// WITH part once): the state row, moved on only from the version the send was decided at, and,
// only if it was, the event, the message row (whose unique key makes the send idempotent) and
// the outbox row. A state that moved on writes nothing and returns no row (errStale), without
// an error that would have to be rolled back; a unique violation fails the transaction.
//
// The message's JSON ($13, the outbox payload) goes once: the event's data is built around it
// here, {"message":<payload>}, the bytes encodeConversationEvent writes for the same event
// (TestTheSendPathStoresTheEventDataEncodeWrites). Sending it twice made a send's Bind message
// larger than pgx's 1 KiB write buffer, which pgx then made again for every send.
const postStatement = `WITH state AS (
	UPDATE conversations SET last_seq = $7, version = $2 WHERE id = $1 AND version = $2 - 1 RETURNING id
), event AS (
	INSERT INTO events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
	SELECT id, $2::bigint, $3::text, $4::uuid, $5::text, ('{"message":' || convert_from($13::bytea, 'UTF8') || '}')::json,
		$6::timestamptz FROM state
), message AS (
	INSERT INTO messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
	SELECT id, $7::bigint, $8::uuid, $9::uuid, $10::text, $11::json, $12::timestamptz FROM state
)
INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
SELECT id, $7::bigint, $8::uuid, $9::uuid, $12::timestamptz, $13::bytea FROM state RETURNING id`

// queuePost queues a send (one MessagePosted on an existing conversation) as postStatement,
// with a callback that appends what it committed to out.
func queuePost(b *pgx.Batch, c *conversation.Conversation, out *[]CommittedMessage) error {
	cm, err := queuePostStatement(b, c)
	if err != nil {
		return err
	}
	b.QueuedQueries[len(b.QueuedQueries)-1].QueryRow(func(row pgx.Row) error { return scanPost(row, cm, out) })
	return nil
}

// queuePostStatement queues postStatement for a send (c recorded one MessagePosted, else an
// error) and returns the message it commits, its outbox id still to be read (scanPost).
func queuePostStatement(b *pgx.Batch, c *conversation.Conversation) (CommittedMessage, error) {
	posted, ok := onePost(c)
	if !ok {
		return CommittedMessage{}, fmt.Errorf("conversation %s: a send writes one MessagePosted, not %d changes", c.ID(), len(c.Changes()))
	}
	m := posted.Message
	payload, err := messagejson.Encode(m)
	if err != nil {
		return CommittedMessage{}, fmt.Errorf("encode message: %w", err)
	}
	b.Queue(postStatement, string(c.ID()), c.Version(), aggregateConversation, uuid.Must(uuid.NewV7()).String(),
		posted.EventType(), time.Now().UTC(),
		m.Seq, m.ID, string(m.SenderID), m.ClientMsgID, string(m.Body), m.CreatedAt, payload)
	return CommittedMessage{Message: m, Payload: payload, Participants: userIDs(c.Participants())}, nil
}

// scanPost reads postStatement's answer: the outbox id, or no row when the state row had moved
// on (errStale: nothing was written).
func scanPost(row pgx.Row, cm CommittedMessage, out *[]CommittedMessage) error {
	if err := row.Scan(&cm.OutboxID); errors.Is(err, pgx.ErrNoRows) {
		return errStale
	} else if err != nil {
		return err
	}
	*out = append(*out, cm)
	return nil
}

// duplicateOf finds the message that holds the (conversation, sender, client_msg_id) key already;
// the failed transaction is rolled back, so the seq it took is never used.
func (r *ConversationRepository) duplicateOf(ctx context.Context, m conversation.Message) error {
	orig, err := findMessageByClientID(ctx, r.pool, m.ConversationID, m.SenderID, m.ClientMsgID)
	if err != nil {
		return fmt.Errorf("load original of duplicate message: %w", err)
	}
	return &conversation.DuplicateMessageError{Original: *orig}
}

func queueProjection(b *pgx.Batch, e conversation.Event, participants []string, out *[]CommittedMessage) error {
	switch e := e.(type) {
	case conversation.Started:
		for _, p := range e.Participants {
			b.Queue(`INSERT INTO conversation_members (user_id, conversation_id) VALUES ($1, $2)`, string(p), string(e.ConversationID))
		}
	case conversation.ParticipantAdded:
		b.Queue(`INSERT INTO conversation_members (user_id, conversation_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			string(e.UserID), string(e.ConversationID))
	case conversation.ParticipantRemoved:
		b.Queue(`DELETE FROM conversation_members WHERE user_id = $1 AND conversation_id = $2`,
			string(e.UserID), string(e.ConversationID))
	case conversation.MessagePosted:
		m := e.Message
		payload, err := messagejson.Encode(m)
		if err != nil {
			return fmt.Errorf("encode message: %w", err)
		}
		// a repeated (conversation, sender, client_msg_id) fails here, on the server, and the
		// transaction with the seq it took rolls back (see writeError)
		b.Queue(`INSERT INTO messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			string(m.ConversationID), m.Seq, m.ID, string(m.SenderID), m.ClientMsgID, string(m.Body), m.CreatedAt)
		b.Queue(`INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			string(m.ConversationID), m.Seq, m.ID, string(m.SenderID), m.CreatedAt, payload).
			QueryRow(func(row pgx.Row) error {
				cm := CommittedMessage{Message: m, Payload: payload, Participants: participants}
				if err := row.Scan(&cm.OutboxID); err != nil {
					return err
				}
				*out = append(*out, cm)
				return nil
			})
	}
	return nil
}

func userIDs(us []conversation.UserID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = string(u)
	}
	return out
}
