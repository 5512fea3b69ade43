// The open session: entering one, reopening it from the address after a reload, and
// rejoining it after a lost connection.

import { call, socket } from "./api.js";
import { clearMessages, mergeHistory, showEmptySession } from "./chat.js";
import { updateControls } from "./controls.js";
import { toast, ui } from "./dom.js";
import { errorText } from "./format.js";
import { loadInspector, renderInspectorChoices } from "./inspector.js";
import { state } from "./state.js";
import { renderSessionBar } from "./topbar.js";

/** Shows `session` with its `messages`, leaving the one open before, and records it in the address. */
export function enterSession(session, messages) {
  const previous = state.session;
  if (previous && previous.id !== session.id) {
    call("session.leave", { session_id: previous.id }).catch(() => {});
  }
  state.session = session;
  state.drift.clear();
  clearMessages();
  window.history.replaceState(null, "", `#session=${session.id}`);
  mergeHistory(messages);
  if (!messages?.length) showEmptySession(session);
  renderSessionBar();
  renderInspectorChoices(true);
  updateControls();
  ui.input.focus();
}

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
    // a session left before anything was said in it is deleted: nothing to reopen
    if (err.code !== "session_not_found") toast(`Could not reopen the session: ${errorText(err)}`);
  }
}

/** On every connection: rejoin the open session, or reopen the one in the address. */
export function setupSession() {
  socket.on("connect", ({ reconnect }) => {
    if (reconnect && state.session) rejoin(state.session.id);
    else if (!state.session) resumeFromHash();
  });
}
