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
  ui.userInput.value = saved.get("user");
  renderWho();
  ui.settingsForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!ui.userInput.checkValidity()) {
      toast("“You are”: letters, digits and . _ @ - only, up to 64 characters");
      return;
    }
    saved.set("name", ui.nameInput.value.trim());
    saved.set("token", ui.tokenInput.value.trim());
    saved.set("user", ui.userInput.value.trim());
    ui.settings.open = false;
    renderWho();
    onSaved();
  });
}

/** Who the server takes this page for: the token's subject, else the chosen user. */
export function renderWho() {
  const subject = tokenSubject(saved.get("token"));
  const user = subject || saved.get("user") || "local";
  ui.who.textContent = `as ${user}`;
  ui.who.title = subject ? "the token's user"
    : "who you are on a server without a secret (change it under Connection)";
}

function tokenSubject(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const sub = JSON.parse(atob(part)).sub;
    return typeof sub === "string" ? sub : "";
  } catch {
    return "";
  }
}

export function renderSessionBar() {
  const s = state.session;
  ui.sessionBar.hidden = !s;
  if (!s) return;
  ui.sessionPersonas.replaceChildren(...s.personas.map((p) => {
    const drift = state.drift.get(p.id);
    const measured = drift !== undefined && Object.keys(drift.traits || {}).length > 0;
    return h("li", { class: "chip session-chip", "data-persona-id": p.id },
      avatar(p.name, p.id), h("span", {}, p.name),
      !measured ? null
        : h("span", { class: `drift-badge${drift.drifting.length ? " warn" : ""}`,
                      testid: "consistency-badge",
                      title: "consistency: how closely replies match the configured traits "
                        + "(1.00 = exactly)" }, `consistency ${fmt2(drift.score)}`));
  }));
  ui.sessionPolicy.textContent = s.personas.length > 1 ? `policy: ${s.policy}` : "";
}
