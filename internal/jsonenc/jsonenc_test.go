package jsonenc_test

import (
	"encoding/json"
	"testing"

	"github.com/nova-chat/nova/internal/jsonenc"
)

func TestMarshalKeepsAngleBracketsAndAmpersands(t *testing.T) {
	v := struct {
		Text string          `json:"text"`
		Body json.RawMessage `json:"body"`
	}{"<b>&</b>", json.RawMessage(`{"html": "<i>x</i> & y"}`)}
	got, err := jsonenc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"text":"<b>&</b>","body":{"html":"<i>x</i> & y"}}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
