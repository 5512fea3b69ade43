// The Personae web client: pick personas, chat with streamed replies, inspect traits and
// memories. Speaks only what docs/protocol.md documents, plus GET /api/personas.

import { SocketClient, SocketError } from "./sio.js";

const MAX_PERSONAS = 8;
const TYPING_IDLE_MS = 3000;
const REMOTE_TYPING_MS = 6000;
const SEND_ATTEMPTS = 3;

const el = (id) => document.querySelector(`[data-testid="${id}"]`);

const ui = {
  status: el("connection-status"),
  settings: el("settings"),
  settingsForm: el("settings-form"),
  nameInput: el("name-input"),
  tokenInput: el("token-input"),
  search: el("persona-search"),
  listStatus: el("persona-list-status"),
  list: el("persona-list"),
  manual: el("persona-manual"),
  selected: el("selected-personas"),
  policyField: el("policy-field"),
  policy: el("policy-select"),
  roundsField: el("rounds-field"),
  rounds: el("rounds-input"),
  start: el("start-button"),
  sessionBar: el("session-bar"),
  sessionPersonas: el("session-personas"),
  sessionPolicy: el("session-policy"),
  messages: el("messages"),
  empty: el("chat-empty"),
  typing: el("typing-indicator"),
  composer: el("composer"),
  input: el("composer-input"),
  send: el("send-button"),
  inspect: el("inspector-persona"),
  drift: el("drift"),
  driftScore: el("drift-score"),
  driftNote: el("drift-note"),
  chart: el("traits-chart"),
  memRefresh: el("memory-refresh"),
  memSearchForm: el("memory-search-form"),
  memQuery: el("memory-search-input"),
  memSearchButton: el("memory-search-button"),
  memSessionOnly: el("memory-session-only"),
  memStatus: el("memory-status"),
  memList: el("memory-list"),
  memMore: el("memory-more"),
  toasts: el("toasts"),
};

const state = {
  personas: [],          // persona views from the REST API
  selected: new Map(),   // key (slug or id) -> {key, name, domains}
  session: null,         // {id, policy, title, personas: [{id, slug, name}]}
  bubbles: new Map(),    // message id -> bubble
  drift: new Map(),      // persona id -> drift score
  typers: new Map(),     // user name -> timer
  typingSent: false,
  typingTimer: null,
  memCursor: null,
  memMode: "list",       // "list" or "search"
  traitsGen: 0,
  memGen: 0,
};

// storage ------------------------------------------------------------------------------------

const saved = {
  get(key) {
    try { return localStorage.getItem(`personae.${key}`) || ""; } catch { return ""; }
  },
  set(key, value) {
    try { localStorage.setItem(`personae.${key}`, value); } catch { /* private mode */ }
  },
};

// DOM helpers --------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "style") node.style.cssText = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "testid") node.dataset.testid = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2))
    .toUpperCase();
}

function hue(text) {
  let n = 0;
  for (const ch of String(text)) n = (n * 31 + ch.charCodeAt(0)) % 360;
  return n;
}

function avatar(name, seed) {
  return h("span", { class: "avatar", style: `--hue:${hue(seed || name)}`, "aria-hidden": "true" },
    initials(name));
}

const fmt2 = (v) => (typeof v === "number" ? v.toFixed(2) : "–");
const clamp01 = (v) => Math.max(0, Math.min(1, Number(v) || 0));

function clockTime(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function ago(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"],
                 [12, "month"], [Infinity, "year"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return rtf.format(Math.round(value), unit);
    value /= size;
  }
  return "";
}

function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function toast(text, kind = "error") {
  const node = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  ui.toasts.append(node);
  setTimeout(() => node.remove(), kind === "error" ? 7000 : 4000);
}

function errorText(err) {
  if (!err) return "something went wrong";
  if (err.code === "rate_limited" && err.retry_after) {
    return `${err.message} (try again in ${Math.ceil(err.retry_after)} s)`;
  }
  return err.message || String(err);
}

// the connection -----------------------------------------------------------------------------

const socket = new SocketClient({
  auth: () => {
    const auth = {};
    const token = saved.get("token");
    const name = saved.get("name").trim();
    if (token) auth.token = token;
    if (name) auth.name = name;
    return auth;
  },
});

/** Calls `event` and returns the ack's body; throws `{code, message}` when it is not ok. */
async function call(event, data, timeoutMs = 15000) {
  const ack = await socket.call(event, data, timeoutMs);
  if (!ack || ack.ok !== true) {
    const error = ack?.error || { code: "internal", message: "malformed answer" };
    throw new SocketError(error.code, error.message, error);
  }
  return ack;
}

socket.on("state", ({ state: s, delayMs, error }) => {
  const labels = {
    idle: "Offline",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    waiting: `Reconnecting in ${Math.ceil((delayMs || 0) / 1000)} s`,
    refused: `Refused: ${error?.message || "unauthorized"}`,
  };
  ui.status.dataset.state = s;
  ui.status.textContent = labels[s] || s;
  if (s === "refused") ui.settings.open = true;
  updateControls();
});

socket.on("connect_error", (err) => toast(`Connection refused: ${err.message}`));

socket.on("connect", ({ reconnect }) => {
  if (reconnect && state.session) rejoin(state.session.id);
  else if (!state.session) resumeFromHash();
});

async function rejoin(sessionId) {
  try {
    const ack = await call("session.start", { session_id: sessionId });
    if (state.session?.id !== sessionId) return;
    state.session = ack.session;
    mergeHistory(ack.history);
    renderSessionBar();
    loadInspector();
  } catch (err) {
    toast(`Could not rejoin the session: ${errorText(err)}`);
  }
}

async function resumeFromHash() {
  const match = /session=([0-9a-f-]{36})/i.exec(location.hash);
  if (!match) return;
  try {
    const ack = await call("session.start", { session_id: match[1] });
    enterSession(ack.session, ack.history);
  } catch (err) {
    history.replaceState(null, "", location.pathname);
    toast(`Could not reopen the session: ${errorText(err)}`);
  }
}

ui.nameInput.value = saved.get("name");
ui.tokenInput.value = saved.get("token");
ui.settingsForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  saved.set("name", ui.nameInput.value.trim());
  saved.set("token", ui.tokenInput.value.trim());
  ui.settings.open = false;
  socket.connect();
  loadPersonas();
});

// the persona picker ---------------------------------------------------------------------------

async function loadPersonas() {
  ui.list.dataset.state = "loading";
  ui.listStatus.textContent = "Loading personas…";
  const headers = { Accept: "application/json" };
  const token = saved.get("token");
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const res = await fetch("/api/personas?limit=200", { headers });
    if (!res.ok) throw new Error(res.status === 401 ? "a token is needed to list personas"
      : `the persona list is unavailable (HTTP ${res.status})`);
    const body = await res.json();
    state.personas = Array.isArray(body?.items) ? body.items : [];
    ui.list.dataset.state = "ready";
    ui.listStatus.textContent = state.personas.length ? ""
      : "No personas yet. Add one by its slug or id below.";
  } catch (err) {
    state.personas = [];
    ui.list.dataset.state = "unavailable";
    ui.listStatus.textContent = `Cannot list personas: ${err.message}. Type a slug or id to add one.`;
  }
  renderPersonaList();
}

function matches(p, query) {
  if (!query) return true;
  const hay = [p.name, p.slug, p.role, ...(p.domains || [])].join(" ").toLowerCase();
  return query.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

function renderPersonaList() {
  const query = ui.search.value.trim();
  const shown = state.personas.filter((p) => matches(p, query));
  ui.list.replaceChildren(...shown.map(personaOption));
  if (state.personas.length && !shown.length) {
    ui.list.append(h("li", { class: "muted no-match" }, `No persona matches “${query}”.`));
  }
  // adding by slug or id is for personas the list does not show (or a server without one)
  const canAdd = query && !shown.length && /^[\w-]{1,100}$/.test(query);
  ui.manual.hidden = !canAdd;
  ui.manual.textContent = canAdd ? `Add “${query}” by slug or id` : "";
}

function personaOption(p) {
  const key = p.slug || p.id;
  const checked = state.selected.has(key);
  const input = h("input", {
    type: "checkbox", testid: "persona-checkbox", checked,
    "aria-describedby": `persona-desc-${p.id}`,
    onchange: (ev) => toggle({ key, name: p.name, domains: p.domains || [] }, ev.target.checked),
  });
  return h("li", { class: `persona${checked ? " is-selected" : ""}`, testid: "persona-option",
                   "data-slug": p.slug, "data-id": p.id },
    h("label", {},
      input,
      avatar(p.name, p.id),
      h("span", { class: "persona-text" },
        h("span", { class: "persona-name" }, p.name),
        h("span", { class: "persona-role", id: `persona-desc-${p.id}` },
          [p.role, (p.domains || []).slice(0, 3).join(" · ")].filter(Boolean).join(" — ")))));
}

function toggle(persona, on) {
  if (on && state.selected.size >= MAX_PERSONAS) {
    toast(`A session holds at most ${MAX_PERSONAS} personas.`);
  } else if (on) {
    state.selected.set(persona.key, persona);
  } else {
    state.selected.delete(persona.key);
  }
  renderPersonaList();
  renderSelected();
}

function renderSelected() {
  ui.selected.replaceChildren(...[...state.selected.values()].map((p) =>
    h("li", { class: "chip", testid: "selected-persona", "data-key": p.key },
      h("span", {}, p.name),
      h("button", { type: "button", class: "chip-x", "aria-label": `Remove ${p.name}`,
                    onclick: () => toggle(p, false) }, "×"))));
  ui.policyField.hidden = state.selected.size < 2;
  ui.roundsField.hidden = ui.policy.value !== "autonomous";
  updateControls();
}

ui.search.addEventListener("input", renderPersonaList);
ui.search.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ui.manual.hidden) {
    ev.preventDefault();
    ui.manual.click();
  }
});
ui.manual.addEventListener("click", () => {
  const key = ui.search.value.trim();
  toggle({ key, name: key, domains: [] }, true);
  ui.search.value = "";
  renderPersonaList();
});
ui.policy.addEventListener("change", renderSelected);

ui.start.addEventListener("click", async () => {
  const payload = { personas: [...state.selected.keys()] };
  if (state.selected.size > 1) {
    payload.policy = ui.policy.value;
    if (payload.policy === "autonomous") payload.rounds = Number(ui.rounds.value) || 3;
  }
  ui.start.disabled = true;
  ui.start.dataset.busy = "true";
  ui.start.textContent = "Starting…";
  try {
    const ack = await call("session.start", payload);
    enterSession(ack.session, ack.history);
  } catch (err) {
    toast(`Could not start the session: ${errorText(err)}`);
  } finally {
    ui.start.dataset.busy = "";
    updateControls();
  }
});

// the session and its messages ---------------------------------------------------------------

function enterSession(session, messages) {
  const previous = state.session;
  if (previous && previous.id !== session.id) {
    call("session.leave", { session_id: previous.id }).catch(() => {});
  }
  state.session = session;
  state.bubbles.clear();
  state.drift.clear();
  ui.messages.replaceChildren();
  window.history.replaceState(null, "", `#session=${session.id}`);
  mergeHistory(messages);
  renderSessionBar();
  renderInspectorChoices(true);
  updateControls();
  ui.input.focus();
}

function renderSessionBar() {
  const s = state.session;
  ui.sessionBar.hidden = !s;
  if (!s) return;
  ui.sessionPersonas.replaceChildren(...s.personas.map((p) => {
    const drift = state.drift.get(p.id);
    return h("li", { class: "chip session-chip", "data-persona-id": p.id },
      avatar(p.name, p.id), h("span", {}, p.name),
      drift === undefined ? null
        : h("span", { class: `drift-badge${drift.drifting.length ? " warn" : ""}`,
                      title: "drift score: 1.00 = in character" }, fmt2(drift.score)));
  }));
  ui.sessionPolicy.textContent = s.personas.length > 1 ? `policy: ${s.policy}` : "";
}

function personaName(personaId) {
  return state.session?.personas.find((p) => p.id === personaId)?.name || "Persona";
}

function mergeHistory(messages) {
  for (const m of messages || []) upsertStored(m);
  scrollToEnd(true);
}

function bubble({ id, role, speaker, personaId, createdAt, status }) {
  const text = document.createTextNode("");
  const meta = h("span", { class: "msg-badges" });
  const foot = h("div", { class: "msg-foot", testid: "message-meta" });
  const node = h("li", {
    class: `msg msg-${role}`, testid: "message", "data-role": role, "data-id": id,
    "data-persona-id": personaId, "data-status": status,
  },
    role === "persona" ? avatar(speaker, personaId) : null,
    h("div", { class: "msg-body" },
      h("div", { class: "msg-head" },
        h("span", { class: "speaker" }, speaker),
        h("time", { datetime: createdAt || "" }, clockTime(createdAt)),
        meta),
      h("div", { class: "msg-text", testid: "message-text" }, text),
      foot));
  const b = { node, text, meta, foot, id, role, personaId, status, seq: null };
  if (id) state.bubbles.set(id, b);
  return b;
}

function place(b) {
  ui.empty?.remove();
  const stick = nearEnd();
  if (b.seq === null) {
    ui.messages.append(b.node);
  } else {
    const after = [...ui.messages.children].find(
      (n) => n !== b.node && n.dataset.seq && Number(n.dataset.seq) > b.seq);
    ui.messages.insertBefore(b.node, after || null);
  }
  scrollToEnd(stick);
}

function setStatus(b, status, note) {
  b.status = status;
  b.node.dataset.status = status;
  b.node.setAttribute("aria-busy", status === "streaming" ? "true" : "false");
  b.meta.replaceChildren();
  if (status === "incomplete") b.meta.append(h("span", { class: "badge warn" }, "incomplete"));
  if (status === "error") b.meta.append(h("span", { class: "badge error" }, "failed"));
  if (status === "sending") b.meta.append(h("span", { class: "badge" }, "sending…"));
  if (note) b.foot.replaceChildren(h("span", { class: "error-text", testid: "message-error" }, note));
}

function upsertStored(m) {
  let b = state.bubbles.get(m.id);
  if (!b) {
    b = bubble({ id: m.id, role: m.role, speaker: m.speaker, personaId: m.persona_id,
                 createdAt: m.created_at, status: m.status });
    b.seq = m.seq;
    place(b);
  }
  b.seq = m.seq;
  b.node.dataset.seq = m.seq;
  b.text.data = m.text;
  setStatus(b, m.status);
  const t = m.timings || {};
  if (m.role === "persona" && t.turn_ms !== undefined) {
    const parts = [];
    if (t.first_token_ms !== undefined) parts.push(`first token ${Math.round(t.first_token_ms)} ms`);
    parts.push(`${(t.turn_ms / 1000).toFixed(1)} s`);
    b.foot.textContent = parts.join(" · ");
  }
  return b;
}

function streamingBubble(messageId, personaId, name) {
  let b = state.bubbles.get(messageId);
  if (!b) {
    b = bubble({ id: messageId, role: "persona", speaker: name, personaId, status: "streaming" });
    b.node.querySelector(".msg-text").append(
      h("span", { class: "dots", "aria-label": `${name} is thinking` }, h("i"), h("i"), h("i")));
    setStatus(b, "streaming");
    place(b);
  }
  return b;
}

const ours = (data) => state.session && data?.session_id === state.session.id;

socket.on("message.started", (d) => {
  if (!ours(d)) return;
  streamingBubble(d.message_id, d.persona.id, d.persona.name);
  renderTyping();
});

socket.on("message.token", (d) => {
  if (!ours(d)) return;
  const b = streamingBubble(d.message_id, d.persona_id, personaName(d.persona_id));
  if (b.status !== "streaming") return;
  b.node.querySelector(".dots")?.remove();
  const stick = nearEnd();
  b.text.appendData(d.delta);
  scrollToEnd(stick);
});

socket.on("message.done", (d) => {
  if (!ours(d)) return;
  const stick = nearEnd();
  const b = upsertStored(d.message);
  b.node.querySelector(".dots")?.remove();
  scrollToEnd(stick);
  renderTyping();
  // a message sent from another tab reaches us only through the transcript
  if (d.message.reply_to && !state.bubbles.has(d.message.reply_to)) catchUp();
});

socket.on("message.error", (d) => {
  if (!ours(d)) return;
  const candidates = [...state.bubbles.values()].filter((b) =>
    b.role === "persona" && (!d.persona_id || b.personaId === d.persona_id)
    && (b.status === "streaming" || (d.code === "llm_stream_broken" && b.status === "incomplete")));
  const b = (d.message_id && state.bubbles.get(d.message_id)) || candidates[candidates.length - 1];
  const who = d.persona_id ? personaName(d.persona_id) : "The persona";
  if (b) {
    b.node.querySelector(".dots")?.remove();
    setStatus(b, b.status === "incomplete" ? "incomplete" : "error", `${who}: ${d.message}`);
  } else {
    const note = h("li", { class: "system-note", testid: "system-note", role: "alert" },
      `${who} could not answer: ${d.message}`);
    ui.empty?.remove();
    ui.messages.append(note);
    scrollToEnd(true);
  }
  renderTyping();
});

async function catchUp() {
  if (!state.session) return;
  try {
    const ack = await call("session.history", { session_id: state.session.id });
    mergeHistory(ack.messages);
  } catch (err) {
    toast(`Could not load the conversation: ${errorText(err)}`);
  }
}

function nearEnd() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollToEnd(stick) {
  if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
}

// sending ------------------------------------------------------------------------------------

ui.composer.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = ui.input.value.trim();
  if (!text || !state.session) return;
  ui.input.value = "";
  autosize();
  stopTyping();
  send(text);
});

ui.input.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.input.addEventListener("input", () => {
  autosize();
  startTyping();
});

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 180)}px`;
}

async function send(text) {
  const sessionId = state.session.id;
  const clientMsgId = uuid4();
  const b = bubble({ id: null, role: "user", speaker: saved.get("name") || "You", status: "sending" });
  b.node.dataset.clientMsgId = clientMsgId;
  b.text.data = text;
  setStatus(b, "sending");
  place(b);
  scrollToEnd(true);
  for (let attempt = 1; ; attempt++) {
    try {
      // resending with the same client_msg_id is safe: the server stores it once
      const ack = await call("message.send", { session_id: sessionId, text, client_msg_id: clientMsgId });
      b.id = ack.message.id;
      b.node.dataset.id = b.id;
      b.node.querySelector(".speaker").textContent = ack.message.speaker;
      state.bubbles.set(b.id, b);
      upsertStored(ack.message);
      return;
    } catch (err) {
      const transient = err.code === "disconnected" || err.code === "timeout";
      if (!transient || attempt >= SEND_ATTEMPTS) {
        setStatus(b, "error", errorText(err));
        b.foot.append(" ", h("button", { type: "button", class: "link", onclick: () => {
          b.node.remove();
          send(text);
        } }, "Retry"));
        return;
      }
    }
  }
}

function startTyping() {
  if (!state.session || !socket.connected) return;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  if (!state.typingSent) {
    state.typingSent = true;
    call("typing", { session_id: state.session.id, is_typing: true }).catch(() => {});
  }
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (state.typingSent && state.session && socket.connected) {
    call("typing", { session_id: state.session.id, is_typing: false }).catch(() => {});
  }
  state.typingSent = false;
}

socket.on("typing", (d) => {
  if (!ours(d)) return;
  clearTimeout(state.typers.get(d.user));
  if (d.is_typing) {
    state.typers.set(d.user, setTimeout(() => {
      state.typers.delete(d.user);
      renderTyping();
    }, REMOTE_TYPING_MS));
  } else {
    state.typers.delete(d.user);
  }
  renderTyping();
});

function renderTyping() {
  const names = [...state.typers.keys()];
  for (const b of state.bubbles.values()) {
    if (b.status === "streaming" && b.role === "persona") names.push(personaName(b.personaId));
  }
  const unique = [...new Set(names)];
  ui.typing.dataset.active = unique.length ? "true" : "false";
  ui.typing.replaceChildren();
  if (!unique.length) return;
  const who = unique.length === 1 ? unique[0]
    : `${unique.slice(0, -1).join(", ")} and ${unique[unique.length - 1]}`;
  ui.typing.append(h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")),
    ` ${who} ${unique.length === 1 ? "is" : "are"} typing…`);
}

// the inspector: traits ---------------------------------------------------------------------

function renderInspectorChoices(force = false) {
  const people = state.session ? state.session.personas
    : [...state.selected.values()].map((p) => ({ id: p.key, name: p.name }));
  const current = ui.inspect.value;
  ui.inspect.replaceChildren(...people.map((p) => h("option", { value: p.id }, p.name)));
  if (!people.length) ui.inspect.append(h("option", { value: "" }, "No persona"));
  if (people.some((p) => p.id === current)) ui.inspect.value = current;
  if (force || ui.inspect.value !== current) loadInspector();
  else updateControls();
}

function inspected() {
  return ui.inspect.value || null;
}

function loadInspector() {
  updateControls();
  state.memMode = "list";
  ui.memQuery.value = "";
  loadTraits();
  loadMemories();
}

ui.inspect.addEventListener("change", loadInspector);

async function loadTraits() {
  const persona = inspected();
  const gen = ++state.traitsGen;
  if (!persona) {
    ui.drift.hidden = true;
    ui.chart.replaceChildren(h("p", { class: "muted" }, "Traits of the selected persona appear here."));
    return;
  }
  const payload = { persona };
  if (state.session) payload.session_id = state.session.id;
  try {
    const ack = await call("persona.traits", payload);
    if (gen === state.traitsGen) renderTraits(ack);
  } catch (err) {
    if (gen === state.traitsGen) {
      ui.chart.replaceChildren(h("p", { class: "muted" }, `Traits unavailable: ${errorText(err)}`));
    }
  }
}

function renderTraits({ persona, traits, observed, drift, turns }) {
  const gaps = drift?.traits || {};
  const drifting = new Set(drift?.drifting || []);
  state.drift.set(persona.id, drift || { score: 0, drifting: [] });
  renderSessionBar();
  ui.drift.hidden = false;
  ui.drift.dataset.drifting = drifting.size ? "true" : "false";
  ui.drift.style.setProperty("--v", clamp01(drift?.score));
  ui.driftScore.textContent = fmt2(drift?.score ?? 0);
  const replies = `${turns} ${turns === 1 ? "reply" : "replies"}`;
  ui.driftNote.textContent = drifting.size ? `Drifting on ${[...drifting].join(", ")} over ${replies}.`
    : turns ? `In character over ${replies} (1.00 = exactly as configured).`
    : "No replies observed yet.";
  if (!traits.length) {
    ui.chart.replaceChildren(h("p", { class: "muted" }, "This persona has no traits."));
    return;
  }
  ui.chart.replaceChildren(...traits.map((t) => {
    const seen = gaps[t.name]?.observed ?? observed?.[t.name]?.mean;
    const count = gaps[t.name]?.count ?? observed?.[t.name]?.count ?? 0;
    const label = `${t.name}${t.evolves ? " (evolves)" : ""}: configured ${fmt2(t.value)}, `
      + (seen === undefined ? "not observed yet" : `observed ${fmt2(seen)} over ${count}`);
    return h("div", { class: `trait${drifting.has(t.name) ? " drifting" : ""}`, testid: "trait-row",
                      "data-trait": t.name, role: "img", "aria-label": label },
      h("div", { class: "trait-name", title: t.description || t.name }, h("span", {}, t.name),
        t.evolves ? h("span", { class: "mark evolves", title: "evolves toward observed behaviour" }) : null,
        t.locked ? h("span", { class: "mark locked", title: "locked" }) : null),
      h("div", { class: "bars", "aria-hidden": "true" },
        h("span", { class: "bar configured", style: `--v:${clamp01(t.value)}` }),
        h("span", { class: `bar observed${seen === undefined ? " unseen" : ""}`,
                    style: `--v:${clamp01(seen)}` })),
      h("div", { class: "trait-values", "aria-hidden": "true" },
        h("span", {}, fmt2(t.value)),
        h("span", { class: `obs${seen === undefined ? " unseen" : ""}` },
          seen === undefined ? "–" : fmt2(seen))));
  }));
}

socket.on("persona.traits_updated", (d) => {
  if (!ours(d)) return;
  state.drift.set(d.persona_id, d.drift);
  renderSessionBar();
  for (const c of d.evolved || []) {
    toast(`${personaName(d.persona_id)}: ${c.name} evolved ${fmt2(c.old)} → ${fmt2(c.new)}`, "info");
  }
  const current = inspected();
  const slug = state.session?.personas.find((p) => p.id === d.persona_id)?.slug;
  if (current === d.persona_id || current === slug) {
    loadTraits();
    // its memories of the turn are written before this event
    if (state.memMode === "list") loadMemories();
  }
});

// the inspector: memories -------------------------------------------------------------------

async function loadMemories(more = false) {
  const persona = inspected();
  const gen = ++state.memGen;
  if (!persona) {
    ui.memList.replaceChildren();
    ui.memStatus.textContent = "Memories of the selected persona appear here.";
    ui.memMore.hidden = true;
    return;
  }
  const payload = { persona, limit: 50 };
  if (ui.memSessionOnly.checked && state.session) payload.session_id = state.session.id;
  if (more && state.memCursor) payload.cursor = state.memCursor;
  ui.memStatus.textContent = "Loading…";
  try {
    const ack = await call("memory.list", payload);
    if (gen !== state.memGen) return;
    const items = ack.memories.map((m) => memoryItem(persona, m));
    if (more) ui.memList.append(...items);
    else ui.memList.replaceChildren(...items);
    state.memCursor = ack.next_cursor;
    ui.memMore.hidden = !ack.next_cursor;
    ui.memStatus.textContent = ui.memList.children.length ? "" : "Nothing remembered yet.";
  } catch (err) {
    if (gen === state.memGen) ui.memStatus.textContent = `Memories unavailable: ${errorText(err)}`;
  }
}

async function searchMemories(query) {
  const persona = inspected();
  if (!persona) return;
  const gen = ++state.memGen;
  state.memMode = "search";
  const payload = { persona, query, k: 10 };
  if (ui.memSessionOnly.checked && state.session) payload.session_id = state.session.id;
  ui.memStatus.textContent = "Searching…";
  ui.memMore.hidden = true;
  try {
    const ack = await call("memory.search", payload);
    if (gen !== state.memGen) return;
    ui.memList.replaceChildren(...ack.results.map((m) => memoryItem(persona, m)));
    ui.memStatus.replaceChildren(
      `${ack.results.length} result${ack.results.length === 1 ? "" : "s"} for “${query}”. `,
      h("button", { type: "button", class: "link", testid: "memory-clear-search", onclick: () => {
        ui.memQuery.value = "";
        state.memMode = "list";
        loadMemories();
      } }, "Show all"));
  } catch (err) {
    if (gen === state.memGen) ui.memStatus.textContent = `Search failed: ${errorText(err)}`;
  }
}

const SCORE_PARTS = ["relevance", "keyword", "recency", "importance"];

function memoryItem(persona, m) {
  const role = m.speaker?.role || "user";
  const pin = h("button", { type: "button", class: "icon", testid: "memory-pin",
                            "aria-pressed": m.pinned ? "true" : "false",
                            title: m.pinned ? "Unpin: let it fade" : "Pin: always recall" },
    m.pinned ? "Unpin" : "Pin");
  const del = h("button", { type: "button", class: "icon danger", testid: "memory-delete" }, "Delete");
  const node = h("li", { class: `memory-item${m.pinned ? " pinned" : ""}`, testid: "memory-item",
                         "data-id": m.id, "data-pinned": m.pinned ? "true" : "false" },
    h("div", { class: "memory-meta" },
      h("span", { class: `speaker role-${role}` }, m.speaker?.name || role),
      h("span", {}, m.kind),
      h("span", { title: "importance" }, `imp ${fmt2(m.importance)}`),
      h("time", { datetime: m.created_at, title: new Date(m.created_at).toLocaleString() },
        ago(m.created_at)),
      m.pinned ? h("span", { class: "badge pin" }, "pinned") : null),
    h("p", { class: "memory-text", testid: "memory-text" }, m.text),
    m.score ? scoreBreakdown(m.score) : null,
    h("div", { class: "memory-actions" }, pin, del));

  pin.addEventListener("click", async () => {
    pin.disabled = true;
    try {
      const ack = await call("memory.pin", { persona, memory_id: m.id, pinned: !m.pinned });
      const updated = { ...ack.memory, score: m.score };
      node.replaceWith(memoryItem(persona, updated));
    } catch (err) {
      pin.disabled = false;
      toast(`Could not ${m.pinned ? "unpin" : "pin"}: ${errorText(err)}`);
    }
  });

  let armed = null;
  del.addEventListener("click", async () => {
    if (!armed) {
      del.textContent = "Really delete?";
      del.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        del.textContent = "Delete";
        del.classList.remove("armed");
      }, 3000);
      return;
    }
    clearTimeout(armed);
    del.disabled = true;
    try {
      await call("memory.delete", { persona, memory_id: m.id });
      node.remove();
      if (!ui.memList.children.length) ui.memStatus.textContent = "Nothing remembered yet.";
    } catch (err) {
      del.disabled = false;
      toast(`Could not delete: ${errorText(err)}`);
    }
  });
  return node;
}

function scoreBreakdown(score) {
  const max = Math.max(1, score.total, ...SCORE_PARTS.map((k) => score[k] || 0));
  return h("div", { class: "score", testid: "memory-score", "data-total": score.total },
    h("div", { class: "score-total" }, "score ", h("strong", {}, fmt2(score.total)),
      score.pinned ? h("span", { class: "badge pin" }, "pinned boost") : null),
    h("dl", { class: "score-parts" }, ...SCORE_PARTS.flatMap((k) => [
      h("dt", {}, k),
      h("dd", {}, h("span", { class: "mini", style: `--v:${clamp01((score[k] || 0) / max)}`,
                              "aria-hidden": "true" }), fmt2(score[k] || 0)),
    ])));
}

ui.memSearchForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const query = ui.memQuery.value.trim();
  if (query) searchMemories(query);
  else {
    state.memMode = "list";
    loadMemories();
  }
});
ui.memRefresh.addEventListener("click", () => {
  loadTraits();
  if (state.memMode === "search" && ui.memQuery.value.trim()) searchMemories(ui.memQuery.value.trim());
  else loadMemories();
});
ui.memMore.addEventListener("click", () => loadMemories(true));
ui.memSessionOnly.addEventListener("change", () => ui.memRefresh.click());

// controls -----------------------------------------------------------------------------------

function updateControls() {
  const live = socket.state !== "refused" && socket.state !== "idle";
  if (ui.start.dataset.busy !== "true") {
    ui.start.disabled = !state.selected.size || !live;
    ui.start.textContent = state.session ? "Start a new session" : "Start session";
  }
  const chatting = Boolean(state.session);
  ui.input.disabled = !chatting;
  ui.send.disabled = !chatting;
  ui.input.placeholder = !chatting ? "Start a session to chat"
    : state.session.personas.length > 1 ? "Message… (mention @name to address one persona)"
    : `Message ${state.session.personas[0]?.name || ""}…`;
  const canInspect = Boolean(inspected());
  ui.inspect.disabled = !canInspect;
  for (const c of [ui.memRefresh, ui.memQuery, ui.memSearchButton]) c.disabled = !canInspect;
}

// start --------------------------------------------------------------------------------------

// before a session starts, the inspector follows the selection
const followSelection = new MutationObserver(() => {
  if (!state.session) renderInspectorChoices();
});
followSelection.observe(ui.selected, { childList: true });

loadPersonas();
renderSelected();
socket.connect();
