// Package auth verifies and issues the HS256 JWTs that name Nova's users.
package auth

import (
	"errors"
	"fmt"
	"strings"
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
}

func NewAuthenticator(secret Secret) *Authenticator {
	if len(secret) < MinSecretLen {
		panic("auth.NewAuthenticator: secret shorter than 32 bytes")
	}
	return &Authenticator{
		key: []byte(secret),
		parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second)),
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
	var rc jwt.RegisteredClaims
	if _, err := a.parser.ParseWithClaims(token, &rc, func(*jwt.Token) (any, error) { return a.key, nil }); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	user, err := conversation.ParseUserID(rc.Subject)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: sub is not a user UUID", ErrUnauthenticated)
	}
	return Claims{User: user, ExpiresAt: rc.ExpiresAt.Time}, nil
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
