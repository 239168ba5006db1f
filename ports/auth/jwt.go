// Package auth verifies and issues the HS256 JWTs that name Nova's users.
package auth

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nova-chat/nova/domain/conversation"
)

// Secret is NOVA_JWT_SECRET: the HS256 key, at least 32 bytes.
type Secret string

const MinSecretLen = 32

// MaxTokenLen bounds what is even parsed; a longer token is refused before any work.
const MaxTokenLen = 4096

var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator checks tokens: HS256 only (no "none", no RS/HS confusion), exp required, sub a user UUID.
type Authenticator struct {
	key    []byte
	parser *jwt.Parser

	// verified remembers tokens that passed, so a client's every request is not parsed and
	// signed again (a twelfth of a busy instance's CPU); only exp can change a verdict later.
	mu       sync.Mutex
	verified map[string]Claims
}

const (
	leeway = 5 * time.Second
	// maxVerified bounds the remembered tokens; past it the memory starts afresh.
	maxVerified = 10_000
)

func NewAuthenticator(secret Secret) *Authenticator {
	if len(secret) < MinSecretLen {
		panic("auth.NewAuthenticator: secret shorter than 32 bytes")
	}
	return &Authenticator{
		key: []byte(secret),
		parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(), jwt.WithLeeway(leeway)),
		verified: map[string]Claims{},
	}
}

// Claims is who a verified token names and until when.
type Claims struct {
	User      conversation.UserID
	ExpiresAt time.Time
}

func (a *Authenticator) Verify(token string) (Claims, error) {
	if token == "" || len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: missing or oversized token", ErrUnauthenticated)
	}
	a.mu.Lock()
	c, ok := a.verified[token]
	a.mu.Unlock()
	if ok {
		if time.Now().Before(c.ExpiresAt.Add(leeway)) {
			return c, nil
		}
		a.mu.Lock()
		delete(a.verified, token)
		a.mu.Unlock()
		return Claims{}, fmt.Errorf("%w: token has expired", ErrUnauthenticated)
	}
	var rc jwt.RegisteredClaims
	if _, err := a.parser.ParseWithClaims(token, &rc, func(*jwt.Token) (any, error) { return a.key, nil }); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	user, err := conversation.ParseUserID(rc.Subject)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: sub is not a user UUID", ErrUnauthenticated)
	}
	c = Claims{User: user, ExpiresAt: rc.ExpiresAt.Time}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[token] = c
	a.mu.Unlock()
	return c, nil
}

// Issue signs a token for user valid for ttl (the `nova token` command and tests).
func (a *Authenticator) Issue(user conversation.UserID, ttl time.Duration) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   string(user),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}).SignedString(a.key)
}

// BearerToken takes the token from an Authorization header; the scheme name is case-insensitive.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return token, true
}
