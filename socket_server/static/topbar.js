// The top bar: connection status, connection settings, and the open session's personas.

import { socket } from "./api.js";
import { updateControls } from "./controls.js";
import { avatar, h, toast, ui } from "./dom.js";
import { fmt2 } from "./format.js";
import { state } from "./state.js";
import { saved } from "./storage.js";

/** Mirrors the connection's state in the status badge; a refusal opens the settings. */
export function setupConnectionStatus() {
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
}

/** Fills the settings form from storage; on submit stores it and calls `onSaved`. */
export function setupSettings(onSaved) {
  ui.nameInput.value = saved.get("name");
  ui.tokenInput.value = saved.get("token");
  ui.settingsForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    saved.set("name", ui.nameInput.value.trim());
    saved.set("token", ui.tokenInput.value.trim());
    ui.settings.open = false;
    onSaved();
  });
}

export function renderSessionBar() {
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
