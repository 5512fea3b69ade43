// The inspector: the traits (configured against observed, and the drift score) and the
// memories of one persona, which can be searched, pinned and deleted.

import { call, socket } from "./api.js";
import { updateControls } from "./controls.js";
import { h, toast, ui } from "./dom.js";
import { ago, clamp01, errorText, fmt2 } from "./format.js";
import { inspected, ours, personaName, state } from "./state.js";
import { renderSessionBar } from "./topbar.js";

// what the total weighs: meaning and keywords as standard scores among the search's
// candidates (the raw cosine and BM25 are in the tooltip), the named speaker, recency
// and importance
const SCORE_PARTS = [
  ["relevance_z", "meaning", "relevance"],
  ["keyword_z", "keywords", "keyword"],
  ["speaker", "speaker", null],
  ["recency", "recency", null],
  ["importance", "importance", null],
];

/**
 * Offers the session's personas (before a session, the selected ones) and reloads the
 * inspector when the inspected persona changes, or always when `force` is set.
 */
export function renderInspectorChoices(force = false) {
  const people = state.session ? state.session.personas
    : [...state.selected.values()].map((p) => ({ id: p.key, name: p.name }));
  const current = ui.inspect.value;
  ui.inspect.replaceChildren(...people.map((p) => h("option", { value: p.id }, p.name)));
  if (!people.length) ui.inspect.append(h("option", { value: "" }, "No persona"));
  if (people.some((p) => p.id === current)) ui.inspect.value = current;
  if (force || ui.inspect.value !== current) loadInspector();
  else updateControls();
}

/** Shows the inspected persona afresh: its traits and its full memory list. */
export function loadInspector() {
  updateControls();
  state.memMode = "list";
  ui.memQuery.value = "";
  loadTraits();
  loadMemories();
}

// traits -------------------------------------------------------------------------------------

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

// memories -----------------------------------------------------------------------------------

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
  const max = Math.max(1, score.total, ...SCORE_PARTS.map(([k]) => score[k] || 0));
  return h("div", { class: "score", testid: "memory-score", "data-total": score.total },
    h("div", { class: "score-total" }, "score ", h("strong", {}, fmt2(score.total)),
      score.pinned ? h("span", { class: "badge pin" }, "pinned boost") : null),
    h("dl", { class: "score-parts" }, ...SCORE_PARTS.flatMap(([k, label, raw]) => [
      h("dt", {}, label),
      h("dd", { title: raw ? `${raw} ${fmt2(score[raw] || 0)}` : "" },
        h("span", { class: "mini", style: `--v:${clamp01((score[k] || 0) / max)}`,
                    "aria-hidden": "true" }), fmt2(score[k] || 0)),
    ])));
}

export function setupInspector() {
  ui.inspect.addEventListener("change", loadInspector);

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

  // before a session starts, the inspector follows the selection
  const followSelection = new MutationObserver(() => {
    if (!state.session) renderInspectorChoices();
  });
  followSelection.observe(ui.selected, { childList: true });
}
