// Which controls are usable now, from the connection, the selection, the session and the
// inspected persona. Every part calls this after changing one of those.

import { socket } from "./api.js";
import { ui } from "./dom.js";
import { inspected, state } from "./state.js";

export function updateControls() {
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
