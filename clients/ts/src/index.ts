// Nova's TypeScript client (no runtime dependencies; browsers and Node.js with a WebSocket
// implementation). It keeps one WebSocket to one of the instances it is given, subscribes to
// conversations and resumes each from its cursor after any reconnect (exponential backoff with
// full jitter, the next instance), drops re-sent messages by seq, acks what the application
// handled (coalesced), and sends with a client_msg_id made once, so a retry is safe.

/** A stored message (PROTOCOL.md section 3). */
export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  stream_id: string;
  sender_id: string;
  client_msg_id: string;
  body: unknown;
  created_at: string;
}

/** Where the last handled seq of each conversation is kept between runs. */
export interface CursorStore {
  get(conversationId: string): number | undefined;
  set(conversationId: string, seq: number): void;
}

/** Cursors in memory (the default): a new run resumes from the cursor Nova keeps instead. */
export class MemoryCursorStore implements CursorStore {
  private cursors = new Map<string, number>();
  get(conversationId: string): number | undefined {
    return this.cursors.get(conversationId);
  }
  set(conversationId: string, seq: number): void {
    this.cursors.set(conversationId, seq);
  }
}

/** Cursors in a Web Storage area (localStorage in browsers), under prefix. */
export class StorageCursorStore implements CursorStore {
  constructor(private storage: Storage, private prefix = "nova:cursor:") {}
  get(conversationId: string): number | undefined {
    const v = this.storage.getItem(this.prefix + conversationId);
    return v === null ? undefined : Number(v);
  }
  set(conversationId: string, seq: number): void {
    this.storage.setItem(this.prefix + conversationId, String(seq));
  }
}

/** An error answer of the HTTP API: code is invalid_argument, not_found, conflict, ... */
export class NovaApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(`nova: ${status} ${code}: ${message}`);
  }
  /** Whether retrying (with the same client_msg_id) may succeed. */
  get retryable(): boolean {
    return this.status >= 500 || this.status === 429;
  }
}

export type Status = "connecting" | "online" | "offline";

/** The WebSocket constructor: browsers have one; in Node.js pass the `ws` package's. */
export type WebSocketConstructor = new (url: string) => WebSocket;

export interface ClientOptions {
  /** Base URLs of Nova instances (http:// or https://), tried in turn. */
  urls: string[];
  /** A UUID naming this installation; the same across restarts. */
  clientId: string;
  /** An access token (JWT), asked before every connection and send (refresh it here). */
  token: () => string | Promise<string>;
  /** Called with each message once, in seq order per conversation; awaited before the next. */
  onMessage: (m: Message) => void | Promise<void>;
  onStatus?: (s: Status) => void;
  /** The server ended a subscription (the user left or was removed). */
  onUnsubscribed?: (conversationId: string, reason: string) => void;
  store?: CursorStore;
  webSocket?: WebSocketConstructor;
  fetch?: typeof fetch;
  /** With manualAck, call ack() once a message is durably handled; else handled = acked. */
  manualAck?: boolean;
  ackEveryMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Nova's client; see the file comment. */
export class NovaClient {
  private opts: Required<Omit<ClientOptions, "onStatus" | "onUnsubscribed" | "webSocket">> &
    Pick<ClientOptions, "onStatus" | "onUnsubscribed"> & { webSocket: WebSocketConstructor };
  private subs = new Map<string, number | undefined>(); // conversation -> last seq handled
  private toAck = new Map<string, number>();
  private ws: WebSocket | undefined;
  private next = 0;
  private stopped = true;
  private backoff: number;
  private queue: Promise<void> = Promise.resolve();
  private failed = new WeakSet<WebSocket>(); // connections whose messages the app failed on
  private ackTimer: ReturnType<typeof setInterval> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ClientOptions) {
    if (!options.urls?.length || !options.clientId || !options.token || !options.onMessage) {
      throw new Error("NovaClient: urls, clientId, token and onMessage are required");
    }
    const webSocket = options.webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!webSocket) throw new Error("NovaClient: no WebSocket implementation; pass options.webSocket");
    this.opts = {
      store: new MemoryCursorStore(),
      fetch: globalThis.fetch.bind(globalThis),
      manualAck: false,
      ackEveryMs: 200,
      minBackoffMs: 100,
      maxBackoffMs: 10_000,
      ...options,
      webSocket,
    };
    this.backoff = this.opts.minBackoffMs;
  }

  /** Follows a conversation from its stored cursor (or, without one, the cursor Nova keeps). */
  subscribe(conversationId: string): void {
    if (!this.subs.has(conversationId)) this.subs.set(conversationId, this.opts.store.get(conversationId));
    this.sendFrame(this.subscribeFrame(conversationId));
  }

  /** Connects and keeps connecting until stop(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.ackTimer = setInterval(() => this.flushAcks(), this.opts.ackEveryMs);
    unref(this.ackTimer); // in Node.js, a forgotten client does not keep the process alive
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.ackTimer);
    clearTimeout(this.retryTimer);
    this.flushAcks();
    const ws = this.ws;
    this.ws = undefined;
    ws?.close(1000, "bye");
    this.opts.onStatus?.("offline");
  }

  /** Records that the application durably handled conversationId up to seq (manualAck). */
  ack(conversationId: string, seq: number): void {
    if (seq > (this.toAck.get(conversationId) ?? 0)) this.toAck.set(conversationId, seq);
  }

  /**
   * Posts body and returns the stored message. The client_msg_id is made once, so retries
   * (a network error, 5xx, 429, the next instance) never store it twice; they go on until
   * signal aborts. Answers retrying cannot change throw NovaApiError at once.
   */
  async send(conversationId: string, body: unknown, signal?: AbortSignal): Promise<Message> {
    const payload = JSON.stringify({ client_msg_id: crypto.randomUUID(), body });
    let backoff = this.opts.minBackoffMs;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const base = this.opts.urls[attempt % this.opts.urls.length];
      try {
        const resp = await this.opts.fetch(`${base}/v1/conversations/${conversationId}/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${await this.opts.token()}` },
          body: payload,
          signal,
        });
        const data = await resp.json().catch(() => ({}));
        if (resp.status === 200 || resp.status === 201) return data as Message;
        const err = new NovaApiError(resp.status, data?.error?.code ?? "", data?.error?.message ?? "");
        if (!err.retryable) throw err;
      } catch (e) {
        if (e instanceof NovaApiError && !e.retryable) throw e;
        if (signal?.aborted) throw e;
      }
      await sleep(backoff);
      backoff = Math.min(2 * backoff, this.opts.maxBackoffMs);
    }
  }

  private subscribeFrame(conversationId: string) {
    const since = this.subs.get(conversationId);
    return since === undefined
      ? { type: "subscribe", conversation_id: conversationId }
      : { type: "subscribe", conversation_id: conversationId, since_seq: since };
  }

  private sendFrame(frame: unknown): void {
    if (this.ws?.readyState === 1) this.ws.send(JSON.stringify(frame));
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.opts.onStatus?.("connecting");
    const base = this.opts.urls[this.next++ % this.opts.urls.length];
    let token: string;
    try {
      token = await this.opts.token();
    } catch {
      return this.retry();
    }
    const url = `${base.replace(/^http/, "ws")}/v1/ws?client_id=${encodeURIComponent(this.opts.clientId)}` +
      `&access_token=${encodeURIComponent(token)}`;
    const ws = new this.opts.webSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = this.opts.minBackoffMs;
      this.opts.onStatus?.("online");
      for (const conv of this.subs.keys()) ws.send(JSON.stringify(this.subscribeFrame(conv)));
    };
    // a socket being closed (stop(), a replaced connection) delivers nothing more
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws === ws) this.onFrame(String(ev.data), ws);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.opts.onStatus?.("offline");
      if (ev.code === 4001) { // token expired: at once, with a fresh token
        void this.connect();
        return;
      }
      this.retry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  private retry(): void {
    if (this.stopped) return;
    const wait = Math.random() * this.backoff; // full jitter
    this.backoff = Math.min(2 * this.backoff, this.opts.maxBackoffMs);
    this.retryTimer = setTimeout(() => void this.connect(), wait);
    unref(this.retryTimer);
  }

  private onFrame(data: string, ws: WebSocket): void {
    let f: { type?: string; conversation_id?: string; reason?: string; message?: Message };
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f.type === "message" && f.message) {
      const m = f.message;
      // handled one at a time, in arrival order; a seq at or below the cursor is a re-send
      this.queue = this.queue.then(async () => {
        if (this.stopped || this.failed.has(ws) || !this.subs.has(m.conversation_id) ||
          m.seq <= (this.subs.get(m.conversation_id) ?? 0)) return;
        await this.opts.onMessage(m);
        this.subs.set(m.conversation_id, m.seq);
        this.opts.store.set(m.conversation_id, m.seq);
        if (!this.opts.manualAck) this.ack(m.conversation_id, m.seq);
      }).catch(() => {
        // the application failed on a message: nothing after it from this connection is handed
        // over (that would skip it); the reconnect resumes after the last message handled
        this.failed.add(ws);
        ws.close();
      });
    } else if (f.type === "unsubscribed" && f.conversation_id) {
      this.subs.delete(f.conversation_id);
      this.opts.onUnsubscribed?.(f.conversation_id, f.reason ?? "");
    }
  }

  private flushAcks(): void {
    for (const [conv, seq] of this.toAck) {
      if (this.ws?.readyState !== 1) return;
      this.ws.send(JSON.stringify({ type: "ack", conversation_id: conv, seq }));
      this.toAck.delete(conv);
    }
  }
}

function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
