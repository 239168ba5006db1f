package monitoring

import "time"

// SendOutcome is how one send request ended.
type SendOutcome string

const (
	SendStored   SendOutcome = "stored"   // a new message was stored
	SendRepeat   SendOutcome = "repeat"   // a retried client_msg_id: the original was returned
	SendRejected SendOutcome = "rejected" // the client's fault (validation, not a participant, ...)
	SendFailed   SendOutcome = "failed"   // ours (Postgres down, retries exhausted, ...)
)

// Outcome classifies a send: created and err as PostMessage returned them, clientFault whether
// the port maps err to a 4xx answer.
func Outcome(created bool, err error, clientFault bool) SendOutcome {
	switch {
	case err != nil && clientFault:
		return SendRejected
	case err != nil:
		return SendFailed
	case created:
		return SendStored
	default:
		return SendRepeat
	}
}

// Observer hears what the driving ports do, for metrics. Its methods run on hot paths: an
// implementation must be cheap and must never block.
type Observer interface {
	// SendHandled: a send (transport "http" or "ws") reached PostMessage and ended so, taking took.
	SendHandled(transport string, took time.Duration, outcome SendOutcome)
	// LiveQueued: a live message's frame was queued to a WebSocket, sinceCreated after the
	// message's created_at.
	LiveQueued(sinceCreated time.Duration)
}
