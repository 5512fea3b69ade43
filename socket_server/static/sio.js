// A small Socket.IO v5 client (Engine.IO 4, WebSocket transport only) for one namespace.
//
// Wire format (checked against python-socketio's packet.py and python-engineio's):
//   Engine.IO:  0{open json}  1 close  2 ping  3 pong  4<socket.io packet>  6 noop
//   Socket.IO:  0 connect, 1 disconnect, 2 event, 3 ack, 4 connect error, each as
//               <type>[/namespace,][ack id][json]
// so a call is `42/chat,7["memory.list",{...}]` and its answer `43/chat,7[{...}]`.

const EIO_OPEN = "0";
const EIO_CLOSE = "1";
const EIO_PING = "2";
const EIO_PONG = "3";
const EIO_MESSAGE = "4";

const SIO_CONNECT = "0";
const SIO_DISCONNECT = "1";
const SIO_EVENT = "2";
const SIO_ACK = "3";
const SIO_CONNECT_ERROR = "4";

/** An error with a protocol code (`timeout`, `disconnected`, `unauthorized`, ...). */
export class SocketError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "SocketError";
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * Connects to `namespace` on the page's own server and stays connected: after a lost
 * connection it reconnects with jittered exponential backoff and fires `reconnect`, so the
 * app can re-join what it had open. A refused connection (`connect_error`) is not retried
 * until `connect()` is called again, because retrying a bad token cannot help.
 *
 * Lifecycle events (via `on`): `state` ({state, attempt?, delayMs?}), `connect`
 * ({sid, reconnect}), `reconnect` ({sid}), `disconnect` ({reason}), `connect_error`
 * (SocketError). Every other name is a server event.
 */
export class SocketClient {
  constructor({ namespace = "/chat", auth = () => ({}), url = defaultUrl(), minDelayMs = 500,
                maxDelayMs = 15000 } = {}) {
    this.namespace = namespace;
    this.url = url;
    this.auth = auth;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.state = "idle";
    this.sid = null;
    this._ws = null;
    this._handlers = new Map();
    this._pending = new Map();
    this._waiters = [];
    this._nextId = 1;
    this._attempt = 0;
    this._everConnected = false;
    this._wanted = false;
    this._retryTimer = null;
    this._heartbeat = null;
    this._heartbeatMs = 45000;
    window.addEventListener("online", () => {
      if (this._retryTimer !== null) this._retryNow();
    });
  }

  /** Registers `fn` for a server or lifecycle event; returns a function that removes it. */
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return () => this._handlers.get(event)?.delete(fn);
  }

  get connected() {
    return this.state === "connected";
  }

  /** Opens the connection (or reopens it, e.g. with a new token). */
  connect() {
    this._wanted = true;
    this._attempt = 0;
    this._clearRetry();
    this._drop("reopened", true);
    this._open();
  }

  /** Closes the connection for good; pending calls fail with `disconnected`. */
  close() {
    this._wanted = false;
    this._clearRetry();
    if (this._ws && this.state === "connected") this._send(EIO_MESSAGE + SIO_DISCONNECT + this._nsp());
    this._drop("client closed", false);
    this._setState("idle");
  }

  /**
   * Emits `event` with an acknowledgement and resolves with the server's answer. Waits for
   * a connection first (within the same timeout). Rejects with SocketError `timeout`, or
   * `disconnected` when the connection drops before the answer (the server may or may not
   * have acted: resend only what is idempotent).
   */
  call(event, data, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const fail = (err) => reject(err);
      this._whenConnected(timeoutMs).then(() => {
        const id = this._nextId++;
        const left = Math.max(1, deadline - Date.now());
        const timer = setTimeout(() => {
          this._pending.delete(id);
          fail(new SocketError("timeout", `no answer to ${event} within ${timeoutMs} ms`));
        }, left);
        this._pending.set(id, { resolve, reject: fail, timer });
        this._send(EIO_MESSAGE + SIO_EVENT + this._nsp() + id + JSON.stringify([event, data]));
      }, fail);
    });
  }

  // connection ---------------------------------------------------------------------------

  _open() {
    this._setState(this._everConnected ? "reconnecting" : "connecting", { attempt: this._attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._scheduleRetry();
      return;
    }
    this._ws = ws;
    ws.onmessage = (ev) => {
      if (this._ws === ws && typeof ev.data === "string") this._receive(ev.data);
    };
    ws.onclose = () => {
      if (this._ws !== ws) return;
      this._lost("transport close");
    };
    ws.onerror = () => {
      // a close event always follows; the browser logs the details
    };
  }

  _receive(frame) {
    const kind = frame[0];
    if (kind === EIO_PING) {
      this._send(EIO_PONG);
      this._armHeartbeat();
    } else if (kind === EIO_OPEN) {
      const open = parseJson(frame.slice(1)) || {};
      this._heartbeatMs = (open.pingInterval || 25000) + (open.pingTimeout || 20000);
      this._armHeartbeat();
      this._send(EIO_MESSAGE + SIO_CONNECT + this._nsp() + JSON.stringify(this.auth() || {}));
    } else if (kind === EIO_MESSAGE) {
      this._packet(frame.slice(1));
    } else if (kind === EIO_CLOSE) {
      this._lost("server close");
    }
  }

  _packet(text) {
    const type = text[0];
    let rest = text.slice(1);
    let nsp = "/";
    if (rest[0] === "/") {
      const comma = rest.indexOf(",");
      nsp = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? "" : rest.slice(comma + 1);
    }
    if (nsp !== this.namespace) return;
    const digits = /^\d+/.exec(rest);
    const id = digits ? Number(digits[0]) : null;
    if (digits) rest = rest.slice(digits[0].length);
    const data = rest ? parseJson(rest) : null;

    if (type === SIO_CONNECT) {
      const reconnect = this._everConnected;
      this.sid = data?.sid ?? null;
      this._everConnected = true;
      this._attempt = 0;
      this._setState("connected");
      this._flushWaiters(null);
      this._dispatch("connect", { sid: this.sid, reconnect });
      if (reconnect) this._dispatch("reconnect", { sid: this.sid });
    } else if (type === SIO_CONNECT_ERROR) {
      const err = connectError(data);
      this._wanted = false;
      this._drop("refused", false);
      this._setState("refused", { error: err });
      this._flushWaiters(err);
      this._dispatch("connect_error", err);
    } else if (type === SIO_EVENT && Array.isArray(data) && typeof data[0] === "string") {
      if (id !== null) this._send(EIO_MESSAGE + SIO_ACK + this._nsp() + id + "[]");
      this._dispatch(data[0], data[1]);
    } else if (type === SIO_ACK && id !== null) {
      const call = this._pending.get(id);
      if (!call) return;
      this._pending.delete(id);
      clearTimeout(call.timer);
      call.resolve(Array.isArray(data) ? data[0] : data);
    } else if (type === SIO_DISCONNECT) {
      this._lost("server disconnect");
    }
  }

  _lost(reason) {
    const wasConnected = this.state === "connected";
    this._drop(reason, true);
    if (wasConnected) this._dispatch("disconnect", { reason });
    if (this._wanted) this._scheduleRetry();
    else this._setState("idle");
  }

  _drop(reason, failPending) {
    clearTimeout(this._heartbeat);
    const ws = this._ws;
    this._ws = null;
    this.sid = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    if (failPending || reason === "client closed" || reason === "refused") {
      for (const [id, call] of this._pending) {
        clearTimeout(call.timer);
        call.reject(new SocketError("disconnected", `connection lost (${reason})`));
        this._pending.delete(id);
      }
    }
  }

  _scheduleRetry() {
    const base = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this._attempt);
    const delayMs = Math.round(base / 2 + Math.random() * base / 2);
    this._attempt += 1;
    this._setState("waiting", { attempt: this._attempt, delayMs });
    this._retryTimer = setTimeout(() => this._retryNow(), delayMs);
  }

  _retryNow() {
    this._clearRetry();
    if (this._wanted) this._open();
  }

  _clearRetry() {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
  }

  _armHeartbeat() {
    clearTimeout(this._heartbeat);
    // the server pings every pingInterval; silence beyond interval + timeout means a dead link
    this._heartbeat = setTimeout(() => this._lost("ping timeout"), this._heartbeatMs);
  }

  _whenConnected(timeoutMs) {
    if (this.connected) return Promise.resolve();
    if (this.state === "refused" || this.state === "idle") {
      return Promise.reject(new SocketError("disconnected", "not connected"));
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      waiter.timer = setTimeout(() => {
        this._waiters = this._waiters.filter((w) => w !== waiter);
        reject(new SocketError("timeout", `not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      this._waiters.push(waiter);
    });
  }

  _flushWaiters(err) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  _send(text) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(text);
  }

  _nsp() {
    return this.namespace === "/" ? "" : this.namespace + ",";
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._dispatch("state", { state, ...detail });
  }

  _dispatch(event, payload) {
    for (const fn of this._handlers.get(event) || []) {
      try {
        fn(payload);
      } catch (err) {
        console.error(`handler for ${event} failed`, err);
      }
    }
  }
}

function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/socket.io/?EIO=4&transport=websocket`;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// python-socketio sends `{message, data?}`; the server's `{code, message}` may arrive as
// `data`, or flattened into `message` as a Python dict literal.
function connectError(data) {
  const info = data && typeof data.data === "object" && data.data ? data.data : data || {};
  let code = info.code;
  let message = typeof info.message === "string" ? info.message : "connection refused";
  const literal = /'code':\s*'([a-z_]+)'.*'message':\s*['"](.*)['"]\}$/.exec(message);
  if (!code && literal) {
    code = literal[1];
    message = literal[2];
  }
  return new SocketError(code || "refused", message);
}
