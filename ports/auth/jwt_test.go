package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/domain/conversation"
	"github.com/nova-chat/nova/ports/auth"
)

const secret = auth.Secret("a-test-secret-that-is-long-enough-0123456789")

func TestARememberedTokenStillExpires(t *testing.T) {
	a := auth.NewAuthenticator(secret)
	user := conversation.UserID(uuid.NewString())
	// given a token past its exp but inside the 5 s leeway, verified (and so remembered) once
	token, err := a.Issue(user, -3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.Verify(token); err != nil || c.User != user {
		t.Fatalf("first verify: %v %v", c, err)
	}
	if _, err := a.Verify(token); err != nil {
		t.Fatalf("second verify, from memory: %v", err)
	}

	// when the leeway has passed too, then it is refused, from memory as well
	time.Sleep(2200 * time.Millisecond) // exp is whole seconds: 1 to 2 s of leeway were left
	if _, err := a.Verify(token); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("expired token: %v, want unauthenticated", err)
	}
	if _, err := a.Verify(token); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("expired token, again: %v, want unauthenticated", err)
	}
}

func TestATamperedTokenIsNotTakenForARememberedOne(t *testing.T) {
	a := auth.NewAuthenticator(secret)
	token, err := a.Issue(conversation.UserID(uuid.NewString()), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(token); err != nil {
		t.Fatal(err)
	}
	// a different signature is a different token: verified on its own, and refused
	tampered := token[:strings.LastIndexByte(token, '.')+1] + "AAAA" + token[strings.LastIndexByte(token, '.')+5:]
	if _, err := a.Verify(tampered); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("tampered token: %v, want unauthenticated", err)
	}
	other := auth.NewAuthenticator(secret + "-other")
	if _, err := other.Verify(token); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("token of another secret: %v, want unauthenticated", err)
	}
}
