// The page's elements by data-testid, and small helpers that build or announce DOM.

export const el = (id) => document.querySelector(`[data-testid="${id}"]`);

export const ui = {
  status: el("connection-status"),
  settings: el("settings"),
  settingsForm: el("settings-form"),
  nameInput: el("name-input"),
  userInput: el("user-input"),
  who: el("who"),
  charCount: el("char-count"),
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
  factsStatus: el("facts-status"),
  factsList: el("facts-list"),
  toasts: el("toasts"),
};

/**
 * Builds an element: `attrs` maps `class`, `style`, `testid`, `on<event>` (listeners) and
 * plain attributes (skipped when null, undefined or false); children may be nodes, text or
 * nested arrays, and null, undefined or false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
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

/** A round badge with the initials of `name`, its colour fixed by `seed` (or the name). */
export function avatar(name, seed) {
  return h("span", { class: "avatar", style: `--hue:${hue(seed || name)}`, "aria-hidden": "true" },
    initials(name));
}

/** Shows `text` briefly in the corner; errors are alerts and stay longer than info. */
export function toast(text, kind = "error") {
  const node = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  ui.toasts.append(node);
  setTimeout(() => node.remove(), kind === "error" ? 7000 : 4000);
}
