// Package systemtest_test holds Nova's system tests: whole `nova serve` processes against real
// Postgres and private Redis servers (internal/testinfra), driven over HTTP and WebSocket.
// `make chaos` runs the Jepsen-style check here (build tag chaos).
package systemtest_test
