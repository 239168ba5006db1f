package redisstream

// FanoutEntry lets the external tests compare the Go encoder with the Lua script.
var FanoutEntry = fanoutEntry
