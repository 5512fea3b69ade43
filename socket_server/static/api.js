// The server: the Socket.IO connection (docs/protocol.md) and GET /api/personas.

import { SocketClient, SocketError } from "./sio.js";
import { saved } from "./storage.js";

export const socket = new SocketClient({
  auth: () => {
    const auth = {};
    const token = saved.get("token");
    const name = saved.get("name").trim();
    const user = saved.get("user").trim();
    if (token) auth.token = token;
    if (user) auth.user = user; // taken only by a server without a secret
    if (name) auth.name = name;
    return auth;
  },
});

/** Calls `event` and returns the ack's body; throws `{code, message}` when it is not ok. */
export async function call(event, data, timeoutMs = 15000) {
  const ack = await socket.call(event, data, timeoutMs);
  if (!ack || ack.ok !== true) {
    const error = ack?.error || { code: "internal", message: "malformed answer" };
    throw new SocketError(error.code, error.message, error);
  }
  return ack;
}

/** The personas the server lists; throws an Error whose message says why there is no list. */
export async function listPersonas() {
  const headers = { Accept: "application/json" };
  const token = saved.get("token");
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch("/api/personas?limit=200", { headers });
  if (!res.ok) throw new Error(res.status === 401 ? "a token is needed to list personas"
    : `the persona list is unavailable (HTTP ${res.status})`);
  const body = await res.json();
  return Array.isArray(body?.items) ? body.items : [];
}
