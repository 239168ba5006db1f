package websocket

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
)

// Buffer sizes of an upgraded connection. net/http hands a hijacked connection 4 KiB for each
// direction, kept for the connection's life; idle connections are most of what an instance
// holds, and a frame header or a typical message fits in far less. Larger frames are read or
// written straight through (bufio skips its buffer for them).
const (
	readBufferSize  = 512
	writeBufferSize = 1024
)

// smallBuffers gives websocket.Accept a hijacked connection with smaller buffers.
type smallBuffers struct{ http.ResponseWriter }

func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the client sent after its request are already read (golang/go#32314). They must
	// sit in the new reader's buffer, not behind it: websocket.Accept keeps what is buffered
	// and points the reader at the connection itself.
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(slices.Clone(early)), conn), max(readBufferSize, len(early)))
	if len(early) > 0 {
		if _, err := br.Peek(len(early)); err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, writeBufferSize)), nil
}

// Unwrap lets http.ResponseController find the underlying writer.
func (s smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }
