package conversation

import "context"

// Repository stores conversations as events. Update keeps the transaction inside the adapter:
// it loads the current state, runs fn, appends what fn recorded, and retries a bounded number
// of times with a fresh aggregate when another writer got there first.
type Repository interface {
	Create(ctx context.Context, c *Conversation) error
	Get(ctx context.Context, id ID) (*Conversation, error)
	Update(ctx context.Context, id ID, fn func(c *Conversation) error) error
}
