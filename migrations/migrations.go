// Package migrations holds the numbered SQL files that build Nova's Postgres schema.
package migrations

import "embed"

// FS holds every migration; goose applies them in order under an advisory lock.
//
//go:embed *.sql
var FS embed.FS
