// The persona studio: edit a persona (traits as sliders with what was observed, beliefs
// with sources, modes, channels), generate one from writing samples, and see how well it
// holds up (quality parts and charts of turns, feedback and drift per day).
// Talks to the REST API (docs/protocol.md) with the token the chat page keeps.

import { saved } from "./storage.js";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const SVG = "http://www.w3.org/2000/svg";
let current = null;   // the persona being edited, as GET /api/personas/{key} shows it
let generated = null; // the slug of the last generated draft

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = saved.get("token");
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(data?.error?.message || `HTTP ${res.status}`);
  return data;
}

function status(text, kind = "info") {
  const el = $("studio-status");
  el.textContent = text;
  el.dataset.kind = kind;
}

/** Grows a textarea to show all its text (no inner scrolling), now and as it is edited. */
function grows(area) {
  const fit = () => {
    area.style.height = "auto";
    area.style.height = `${area.scrollHeight + 2}px`;
  };
  area.addEventListener("input", fit);
  requestAnimationFrame(fit);
  return area;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "testid") node.dataset.testid = v;
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

// ---- persona list and editor -------------------------------------------------------------

async function loadList(select) {
  const page = await api("GET", "/api/personas?limit=200");
  const picker = $("studio-persona");
  picker.replaceChildren(...page.items.map((p) => el("option", { value: p.slug }, p.name)));
  if (select) picker.value = select;
  if (picker.value) await loadPersona(picker.value);
}

async function loadPersona(slug) {
  current = await api("GET", `/api/personas/${encodeURIComponent(slug)}`);
  let observed = {};
  try {
    observed = (await api("GET", `/api/personas/${encodeURIComponent(slug)}/traits`)).drift.traits;
  } catch { /* no observations yet */ }
  renderEditor(observed);
  await loadQuality(slug);
}

function renderEditor(observed) {
  const p = current;
  $("editor-version").textContent = `v${p.version}${p.active ? "" : " (inactive)"}`;
  $("editor-name").value = p.name;
  $("editor-description").value = p.description;
  grows($("editor-description"));
  $("editor-reason").value = "";
  $("editor-traits").replaceChildren(...p.traits.filter((t) => !t.inherited).map((t) => {
    const input = el("input", {
      type: "range", min: "0", max: "1", step: "0.01", value: String(t.value),
      disabled: t.locked, testid: "trait-slider",
    });
    input.dataset.name = t.name;
    const shown = el("span", { testid: "trait-value" }, t.value.toFixed(2));
    input.addEventListener("input", () => { shown.textContent = Number(input.value).toFixed(2); });
    const slot = el("div", { className: "trait-slider" }, input);
    const seen = observed[t.name];
    if (seen) {
      const mark = el("span", { className: "observed-mark", testid: "observed-mark",
                                title: `observed ${seen.observed.toFixed(2)}` });
      mark.style.left = `calc(${(seen.observed * 100).toFixed(1)}% - 1px)`;
      slot.append(mark);
    }
    const label = t.name.replaceAll("_", " ") + (t.locked ? " (locked)" : "");
    return el("li", { testid: "trait-row" }, el("span", {}, label), slot, shown);
  }));
  $("editor-beliefs").replaceChildren(...p.beliefs.map(beliefRow));
  $("editor-modes").replaceChildren(...p.modes.map((m) => {
    const box = el("input", { type: "checkbox", checked: m.enabled, testid: "mode-checkbox" });
    box.dataset.mode = m.mode;
    return el("label", {}, box, ` ${m.mode}`);
  }));
  $("editor-channels").replaceChildren(...(p.channels || []).map((c) => el(
    "li", { testid: "channel-item" },
    `${c.name}: ${c.min_words ?? "–"}–${c.max_words ?? "–"} words${c.tone ? `, ${c.tone}` : ""}`
      + (c.builtin ? (c.overridden ? " (overlay)" : " (built in)") : " (own)"),
  )));
}

function beliefRow(b = { text: "", source: "" }) {
  const remove = el("button", { type: "button", testid: "belief-remove" }, "Remove");
  const text = grows(el("textarea", { value: b.text, placeholder: "belief", testid: "belief-text",
                                      maxLength: 2000, rows: 1 }));
  text.setAttribute("aria-label", "Belief");
  const source = grows(el("textarea", { value: b.source, placeholder: "source",
                                        testid: "belief-source", maxLength: 500, rows: 1 }));
  source.setAttribute("aria-label", "Source");
  const row = el("li", { testid: "belief-row" }, text, source, remove);
  remove.addEventListener("click", () => row.remove());
  return row;
}

async function save(event) {
  event.preventDefault();
  if (!current) return;
  const values = Object.fromEntries([...document.querySelectorAll('[data-testid="trait-slider"]')]
    .map((s) => [s.dataset.name, Number(s.value)]));
  const body = {
    name: $("editor-name").value.trim(),
    description: $("editor-description").value.trim(),
    traits: current.traits.filter((t) => !t.inherited).map((t) => ({
      name: t.name, type: t.type, value: values[t.name] ?? t.value, description: t.description,
      source: t.source || "", evolves: t.evolves, locked: t.locked,
    })),
    beliefs: [...document.querySelectorAll('[data-testid="belief-row"]')]
      .map((row) => ({
        text: row.querySelector('[data-testid="belief-text"]').value.trim(),
        source: row.querySelector('[data-testid="belief-source"]').value.trim(),
      }))
      .filter((b) => b.text),
    modes: [...document.querySelectorAll('[data-testid="mode-checkbox"]')]
      .map((box) => ({ mode: box.dataset.mode, enabled: box.checked })),
  };
  const reason = $("editor-reason").value.trim();
  if (reason) body.reason = reason;
  try {
    const saved = await api("PATCH", `/api/personas/${encodeURIComponent(current.slug)}`, body);
    status(`Saved ${saved.slug} as version ${saved.version}`);
    await loadPersona(saved.slug);
  } catch (err) {
    status(`Not saved: ${err.message}`, "error");
  }
}

// ---- generate from writing ---------------------------------------------------------------

const ROWS = [
  ["median sentence length", (f) => `${f.sentence_length.median} words (p10 ${f.sentence_length.p10}, p90 ${f.sentence_length.p90})`],
  ["questions", (f) => `${Math.round(100 * f.sentence_types.question)} % of sentences`],
  ["exclamations", (f) => `${Math.round(100 * f.sentence_types.exclamation)} % of sentences`],
  ["clauses per sentence", (f) => String(f.clause_complexity.clauses_per_sentence)],
  ["lexical diversity (MTLD)", (f) => String(f.mtld)],
  ["vocabulary sophistication", (f) => f.sophistication.score.toFixed(2)],
  ["mean word length", (f) => `${f.word_length.mean} letters`],
  ["hedges", (f) => `${f.rhetoric.hedges_per_100_words} per 100 words`],
  ["formality", (f) => f.style.formality.toFixed(2)],
  ["characteristic words", (f) => f.characteristic_words.slice(0, 8).map((w) => w.word).join(", ")],
];

async function generate(event) {
  event.preventDefault();
  const samples = $("generate-samples").value.split(/^\s*---\s*$/m).map((s) => s.trim())
    .filter(Boolean);
  const body = { samples };
  const name = $("generate-name").value.trim();
  if (name) body.name = name;
  try {
    const made = await api("POST", "/api/personas/generate", body);
    const f = made.fingerprint;
    generated = made.persona.slug;
    $("fingerprint-summary").textContent = `${made.persona.name}: ${made.archetype}, from `
      + `${f.samples} sample(s), ${f.words} words, ${f.sentences} sentences; confidence `
      + `${made.confidence.toFixed(2)}. It is inactive until you activate it.`;
    $("fingerprint-table").replaceChildren(...ROWS.map(([label, read]) => el(
      "tr", { testid: "fingerprint-row" }, el("td", {}, label), el("td", {}, read(f)))));
    $("fingerprint").hidden = false;
    status(`Generated ${generated}`);
    await loadList(generated);
  } catch (err) {
    status(`Not generated: ${err.message}`, "error");
  }
}

async function activate() {
  if (!generated) return;
  try {
    const p = await api("PATCH", `/api/personas/${encodeURIComponent(generated)}`,
      { active: true, reason: "activated in the studio" });
    status(`Activated ${p.slug} (version ${p.version})`);
    await loadList(p.slug);
  } catch (err) {
    status(`Not activated: ${err.message}`, "error");
  }
}

// ---- quality and analytics ---------------------------------------------------------------

const PARTS = { consistency: "Consistency", linguistic_match: "Linguistic match",
                channel_compliance: "Channel compliance", satisfaction: "Satisfaction" };

async function loadQuality(slug) {
  const key = encodeURIComponent(slug);
  const [quality, analytics] = await Promise.all([
    api("GET", `/api/personas/${key}/quality`),
    api("GET", `/api/personas/${key}/analytics`),
  ]);
  $("quality-parts").replaceChildren(...Object.entries(PARTS).map(([key, label]) => {
    const part = quality.parts[key];
    const item = el("li", { testid: "quality-part" }, el("span", {}, label),
      el("strong", {}, part ? String(Math.round(part.score)) : "–"));
    item.dataset.part = key;
    item.dataset.weakest = String(quality.weakest === key);
    return item;
  }));
  $("quality-next").textContent = quality.next;
  const days = analytics.days;
  const { totals } = analytics;
  chart("chart-turns", totals.turns > 0, (svg) => bars(svg, days.map((d) => [d.turns])));
  chart("chart-feedback", totals.feedback_up + totals.feedback_down > 0,
    (svg) => bars(svg, days.map((d) => [d.feedback_up, d.feedback_down])));
  chart("chart-drift", days.some((d) => d.drift !== null),
    (svg) => line(svg, days.map((d) => d.drift)));
}

/** Draws a chart, or (no data yet) says in its place what will appear there and when. */
function chart(testid, hasData, draw) {
  const svg = $(testid);
  svg.toggleAttribute("hidden", !hasData);
  $(`${testid}-empty`).hidden = hasData;
  if (hasData) draw(svg);
  else svg.replaceChildren();
}

function bars(svg, series) {
  const max = Math.max(1, ...series.flat());
  const width = 300 / Math.max(series.length, 1);
  const shapes = [];
  series.forEach((values, i) => {
    values.forEach((v, j) => {
      const h = (v / max) * 90;
      const w = width / values.length;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(i * width + j * w));
      rect.setAttribute("y", String(100 - h));
      rect.setAttribute("width", String(Math.max(w - 1, 1)));
      rect.setAttribute("height", String(h));
      rect.setAttribute("class", j === 1 ? "bar down" : "bar");
      rect.dataset.value = String(v);
      shapes.push(rect);
    });
  });
  svg.replaceChildren(...shapes);
}

function line(svg, values) {
  const step = 300 / Math.max(values.length - 1, 1);
  const points = values.map((v, i) => (v === null ? null : `${i * step},${100 - v * 90}`))
    .filter(Boolean);
  const path = document.createElementNS(SVG, "polyline");
  path.setAttribute("points", points.join(" "));
  path.setAttribute("class", "line");
  path.dataset.points = String(points.length);
  svg.replaceChildren(path);
}

// ---- start -----------------------------------------------------------------------------

$("editor-form").addEventListener("submit", save);
$("belief-add").addEventListener("click", () => $("editor-beliefs").append(beliefRow()));
$("generate-form").addEventListener("submit", generate);
$("activate-button").addEventListener("click", activate);
$("studio-persona").addEventListener("change", (e) => loadPersona(e.target.value)
  .catch((err) => status(err.message, "error")));
loadList().then(() => status("Ready")).catch((err) => status(err.message, "error"));
