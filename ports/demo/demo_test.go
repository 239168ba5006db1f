package demo_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/nova-chat/nova/ports/auth"
	"github.com/nova-chat/nova/ports/demo"
)

func serve(enabled bool, method, path string) *httptest.ResponseRecorder {
	e := echo.New()
	demo.New(demo.Enabled(enabled), auth.NewAuthenticator(auth.Secret(strings.Repeat("s", 40)))).Register(e)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestTheDemoIsOffUnlessTurnedOn(t *testing.T) {
	for _, p := range []string{"/demo/", "/demo/app.js"} {
		if rec := serve(false, "GET", p); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s with the demo off: %d, want 404", p, rec.Code)
		}
	}
	if rec := serve(false, "POST", "/demo/token?user=alice"); rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("the token endpoint answers %d with the demo off", rec.Code)
	}
}

func TestTheDemoTokenEndpointSignsATokenForATestUser(t *testing.T) {
	authn := auth.NewAuthenticator(auth.Secret(strings.Repeat("s", 40)))
	rec := serve(true, "POST", "/demo/token?user=alice")
	var got struct{ UserID, Token string }
	if err := json.Unmarshal(rec.Body.Bytes(), &struct {
		UserID *string `json:"user_id"`
		Token  *string `json:"token"`
	}{&got.UserID, &got.Token}); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	claims, err := authn.Verify(got.Token)
	if err != nil || string(claims.User) != got.UserID {
		t.Fatalf("token for %s: %v, %+v", got.UserID, err, claims)
	}
	if again := serve(true, "POST", "/demo/token?user=alice"); !strings.Contains(again.Body.String(), got.UserID) {
		t.Error("the same name gave another user id")
	}
	if rec := serve(true, "GET", "/demo/"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Nova demo chat") {
		t.Errorf("the page: %d", rec.Code)
	}
}
