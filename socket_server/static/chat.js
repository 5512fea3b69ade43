// The conversation: message bubbles, replies streamed token by token, the composer, and
// who is typing.

import { call, socket } from "./api.js";
import { avatar, h, toast, ui } from "./dom.js";
import { clockTime, errorText } from "./format.js";
import { ours, personaName, state } from "./state.js";
import { saved } from "./storage.js";

const TYPING_IDLE_MS = 3000;
const REMOTE_TYPING_MS = 6000;
const SEND_ATTEMPTS = 3;
// the server's default PERSONAE_MAX_MESSAGE_CHARS: a longer message would be refused
export const MAX_MESSAGE_CHARS = 8000;

// messages -----------------------------------------------------------------------------------

/** Empties the conversation, e.g. for another session. */
export function clearMessages() {
  state.bubbles.clear();
  ui.messages.replaceChildren();
}

/** Adds or updates stored messages (history or a catch-up) in sequence order. */
export function mergeHistory(messages) {
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

/** What to try in a session with nothing said yet. */
export function showEmptySession(session) {
  const names = session.personas.map((p) => p.name);
  const who = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names[0];
  const hint = names.length > 1
    ? "Say hello to everyone, or address one of them with @name."
    : "Say hello, ask a question, or tell it something about you: it will remember.";
  ui.messages.replaceChildren(h("li", { class: "empty", testid: "chat-empty" },
    h("strong", {}, `A new conversation with ${who}.`), h("span", {}, hint)));
}

function removeEmpty() {
  ui.messages.querySelector('[data-testid="chat-empty"]')?.remove();
}

function place(b) {
  removeEmpty();
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

const CUT_REASONS = {
  length: "cut at the reply length limit",
  repetition: "cut where it started repeating itself",
  speaker: "cut where it started writing another speaker's line",
  stopped: "stopped while it was being written",
};

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
  if (m.cut) {
    // the reply was cut short (token limit, a repetition, another speaker's line)
    b.node.dataset.cut = m.cut;
    b.meta.append(h("span", { class: "badge warn", testid: "message-cut",
                              title: CUT_REASONS[m.cut] || m.cut }, "cut"));
  }
  const t = m.timings || {};
  // the stored timings (after a reload) have no turn total: the model's time stands in
  const total = t.turn_ms ?? t.llm_ms;
  if (m.role === "persona" && (total !== undefined || t.first_token_ms !== undefined)) {
    const parts = [];
    if (t.first_token_ms !== undefined) parts.push(`first token ${Math.round(t.first_token_ms)} ms`);
    if (total !== undefined) parts.push(`${(total / 1000).toFixed(1)} s`);
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

// typing -------------------------------------------------------------------------------------

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

// sending ------------------------------------------------------------------------------------

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
      if (ack.duplicate) {
        // stored by an earlier try whose answer may have died with the server that ran
        // it: ask for it again (a persona that did answer only re-sends its reply)
        call("message.retry", { session_id: sessionId, message_id: b.id })
          .catch((err) => setStatus(b, "error", errorText(err)));
      }
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

function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// wiring -------------------------------------------------------------------------------------

export function setupChat() {
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
      removeEmpty();
      ui.messages.append(note);
      scrollToEnd(true);
    }
    renderTyping();
  });

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

  ui.composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = ui.input.value.trim();
    if (!text || !state.session || text.length > MAX_MESSAGE_CHARS) return;
    ui.input.value = "";
    autosize();
    countChars();
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
    countChars();
    startTyping();
  });
}

/** The message box's length against the limit; over it, Send is off and says why. */
function countChars() {
  const n = ui.input.value.trim().length;
  const over = n > MAX_MESSAGE_CHARS;
  ui.charCount.hidden = n < MAX_MESSAGE_CHARS * 0.8;
  ui.charCount.dataset.over = over ? "true" : "false";
  ui.charCount.textContent = over
    ? `${n.toLocaleString()} / ${MAX_MESSAGE_CHARS.toLocaleString()}: ${
      (n - MAX_MESSAGE_CHARS).toLocaleString()} characters too long`
    : `${n.toLocaleString()} / ${MAX_MESSAGE_CHARS.toLocaleString()}`;
  if (state.session) ui.send.disabled = over;
}
