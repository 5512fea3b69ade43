// The inspector: the traits (configured against observed, and the drift score), what the
// persona knows about the user (facts, current and superseded, which can be corrected and
// deleted) and the memories of one persona, which can be searched, pinned and deleted.

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
  loadFacts();
  loadMemories();
}

// facts --------------------------------------------------------------------------------------

let factsGen = 0;

async function loadFacts() {
  const persona = inspected();
  const gen = ++factsGen;
  if (!persona) {
    ui.factsList.replaceChildren();
    ui.factsStatus.textContent = "";
    return;
  }
  try {
    const ack = await call("fact.list", { persona });
    if (gen !== factsGen) return;
    // current facts first, each subject's history after them, newest first
    const facts = [...ack.facts].sort((a, b) => (b.current - a.current)
      || (b.valid_from > a.valid_from ? 1 : b.valid_from < a.valid_from ? -1 : 0));
    ui.factsList.replaceChildren(...facts.map((f) => factItem(persona, f)));
    ui.factsStatus.textContent = facts.length ? "" : "Nothing known about you yet.";
  } catch (err) {
    if (gen === factsGen) ui.factsStatus.textContent = `Facts unavailable: ${errorText(err)}`;
  }
}

function day(iso) {
  return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

function factItem(persona, f) {
  const when = f.current ? `since ${day(f.valid_from)}`
    : `${day(f.valid_from)} – ${day(f.valid_until)}`;
  const node = h("li", { class: `memory-item fact${f.current ? "" : " superseded"}`, testid: "fact-item",
                         "data-id": f.id, "data-current": f.current ? "true" : "false" },
    h("div", { class: "memory-meta" },
      h("span", {}, f.subject),
      h("span", { testid: "fact-when" }, when),
      f.current ? null : h("span", { class: "badge" }, "no longer true"),
      f.origin === "corrected" ? h("span", { class: "badge" }, "corrected") : null),
    h("p", { class: "memory-text", testid: "fact-text" }, f.text));
  if (!f.current) return node;
  const fix = h("button", { type: "button", class: "icon", testid: "fact-correct" }, "Correct");
  const del = h("button", { type: "button", class: "icon danger", testid: "fact-delete" }, "Delete");
  node.append(h("div", { class: "memory-actions" }, fix, del));
  fix.addEventListener("click", async () => {
    const text = window.prompt("What is true instead?", f.text);
    if (!text || !text.trim() || text.trim() === f.text) return;
    try {
      await call("fact.correct", { persona, fact_id: f.id, text: text.trim() });
      loadFacts();
    } catch (err) {
      toast(`Could not correct: ${errorText(err)}`);
    }
  });
  del.addEventListener("click", async () => {
    del.disabled = true;
    try {
      await call("fact.delete", { persona, fact_id: f.id });
      loadFacts();
    } catch (err) {
      del.disabled = false;
      toast(`Could not delete: ${errorText(err)}`);
    }
  });
  return node;
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
  // a trait counts once it was observed in enough replies; before that there is no score
  const measured = Object.keys(gaps).length > 0;
  ui.drift.dataset.drifting = drifting.size ? "true" : "false";
  ui.drift.dataset.measured = measured ? "true" : "false";
  ui.drift.style.setProperty("--v", measured ? clamp01(drift?.score) : 0);
  ui.driftScore.textContent = measured ? fmt2(drift?.score ?? 0) : "–";
  const replies = `${turns} ${turns === 1 ? "reply" : "replies"}`;
  ui.driftNote.textContent = !measured
    ? `Not enough replies yet (${replies} observed; a trait counts after 3).`
    : drifting.size ? `Drifting on ${[...drifting].join(", ")} over ${replies}.`
    : `In character over ${replies} (1.00 = exactly as configured).`;
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

const COLLAPSE_CHARS = 280;

/** A memory's text; a long one shows its first lines and opens on request. */
function memoryText(text) {
  const p = h("p", { class: "memory-text", testid: "memory-text" }, text);
  if (text.length <= COLLAPSE_CHARS) return p;
  p.classList.add("collapsed");
  const toggle = h("button", { type: "button", class: "link small", testid: "memory-expand",
                               "aria-expanded": "false" }, "Show all");
  toggle.addEventListener("click", () => {
    const open = p.classList.toggle("collapsed") === false;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.textContent = open ? "Show less" : "Show all";
  });
  return h("div", { class: "memory-body" }, p, toggle);
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
    memoryText(m.text),
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
      // facts are consolidated in the background, a moment after the turn
      setTimeout(loadFacts, 1500);
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
    loadFacts();
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
