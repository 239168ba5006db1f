// Runs against real `nova serve` instances, started by the Go test that runs this one
// (systemtest/ts_client_test.go), which passes NOVA_URLS, NOVA_CONV (a conversation of alice
// and bob) and their tokens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { MemoryCursorStore, NovaApiError, NovaClient, type Message, type WebSocketConstructor } from "../src/index.js";

const urls = (process.env.NOVA_URLS ?? "").split(",");
const conv = process.env.NOVA_CONV ?? "";
const alice = process.env.NOVA_TOKEN_ALICE ?? "";
const bob = process.env.NOVA_TOKEN_BOB ?? "";

function client(token: string, onMessage: (m: Message) => void, extra: Partial<ConstructorParameters<typeof NovaClient>[0]> = {}) {
  return new NovaClient({
    urls, clientId: randomUUID(), token: () => token, onMessage,
    webSocket: WebSocket as unknown as WebSocketConstructor, minBackoffMs: 50, maxBackoffMs: 500, ...extra,
  });
}

function until(cond: () => boolean, ms = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => (cond() ? resolve() : Date.now() - start > ms ? reject(new Error("timed out")) : setTimeout(tick, 20));
    tick();
  });
}

test("messages sent by one client reach another once, in order, and a new run resumes from the stored cursor", async () => {
  const store = new MemoryCursorStore();
  store.set(conv, 0); // from the conversation's first message
  const seen: number[] = [];
  const reader = client(bob, (m) => { seen.push(m.seq); }, { store });
  reader.subscribe(conv);
  reader.start();
  const writer = client(alice, () => {});
  try {
    for (let i = 0; i < 30; i++) await writer.send(conv, { n: i });
    await until(() => seen.length >= 30);
  } finally {
    reader.stop();
  }
  assert.deepEqual(seen, Array.from({ length: 30 }, (_, i) => i + 1));

  // while bob's app is away, 10 more arrive; the next run resumes after what it handled
  for (let i = 30; i < 40; i++) await writer.send(conv, { n: i });
  const again: number[] = [];
  const second = client(bob, (m) => { again.push(m.seq); }, { store });
  second.subscribe(conv);
  second.start();
  try {
    await until(() => again.length >= 10);
    await new Promise((r) => setTimeout(r, 300)); // nothing more comes
  } finally {
    second.stop();
  }
  assert.deepEqual(again, Array.from({ length: 10 }, (_, i) => i + 31));
});

test("a connection cut mid-stream is resumed with nothing lost or repeated", async () => {
  const store = new MemoryCursorStore();
  store.set(conv, 40);
  const seen: number[] = [];
  let statuses = 0;
  const reader = client(bob, (m) => { seen.push(m.seq); }, { store, onStatus: (s) => { if (s === "online") statuses++; } });
  reader.subscribe(conv);
  reader.start();
  const writer = client(alice, () => {});
  try {
    for (let i = 0; i < 40; i++) {
      await writer.send(conv, { n: i });
      if (i === 15) (reader as unknown as { ws?: { close: () => void } }).ws?.close(); // drop it
    }
    await until(() => seen.length >= 40, 30_000);
  } finally {
    reader.stop();
  }
  assert.ok(statuses >= 2, `connected ${statuses} times, want a reconnect`);
  assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => i + 41));
});

test("a send is retried on the next instance with the same client_msg_id, and errors are typed", async () => {
  const writer = new NovaClient({
    urls: ["http://127.0.0.1:1", ...urls], clientId: randomUUID(), token: () => alice, onMessage: () => {},
    webSocket: WebSocket as unknown as WebSocketConstructor, minBackoffMs: 20,
  });
  const m = await writer.send(conv, { text: "<retried>" });
  assert.ok(m.seq > 80 && m.client_msg_id.length > 0);
  assert.deepEqual(m.body, { text: "<retried>" });
  await assert.rejects(writer.send(randomUUID(), "x"), (e: unknown) => e instanceof NovaApiError && e.status === 404 && e.code === "not_found");
});

test("a message the application fails on comes again, and nothing after it is skipped", async () => {
  const store = new MemoryCursorStore();
  store.set(conv, 81); // after the earlier tests' messages
  const seen: number[] = [];
  let failOnce = true;
  const reader = client(bob, (m) => {
    if (m.seq === 84 && failOnce) {
      failOnce = false;
      throw new Error("the app's database was busy");
    }
    seen.push(m.seq);
  }, { store });
  reader.subscribe(conv);
  reader.start();
  const writer = client(alice, () => {});
  try {
    for (let i = 0; i < 6; i++) await writer.send(conv, { n: i });
    await until(() => seen.length >= 6);
  } finally {
    reader.stop();
  }
  assert.deepEqual(seen, [82, 83, 84, 85, 86, 87]);
});
