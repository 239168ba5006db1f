package websocket_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-chat/nova/internal/testinfra"
)

// maskedText is a client text frame (clients must mask), short payloads only.
func maskedText(payload string) []byte {
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload))}
	frame = append(frame, mask[:]...)
	for i := range len(payload) {
		frame = append(frame, payload[i]^mask[i%4])
	}
	return frame
}

func TestFramesSentTogetherWithTheHandshakeAreNotLost(t *testing.T) {
	inst, _ := startNova(t, nil)
	alice := testinfra.NewUser(t, inst.URL)

	// given a client that writes its upgrade request and two frames in one packet
	conn, err := net.Dial("tcp", strings.TrimPrefix(inst.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req bytes.Buffer
	req.WriteString("GET /v1/ws?client_id=" + uuid.NewString() + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(inst.URL, "http://") +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Authorization: Bearer " + alice.Token + "\r\n\r\n")
	req.Write(maskedText(`{"type":"ping","id":"early-1"}`))
	req.Write(maskedText(`{"type":"ping","id":"early-2"}`))
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}

	// then the upgrade succeeds and both frames are answered, in order
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	for _, id := range []string{"early-1", "early-2"} {
		head := make([]byte, 2)
		if _, err := io.ReadFull(br, head); err != nil {
			t.Fatalf("read frame for %s: %v", id, err)
		}
		payload := make([]byte, head[1]&0x7f) // server frames are unmasked; pongs are short
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(payload), `"pong"`) || !strings.Contains(string(payload), id) {
			t.Fatalf("got %q, want the pong for %s", payload, id)
		}
	}
}
