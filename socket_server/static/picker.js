// The persona picker: list and search the server's personas (or add one by slug or id when
// there is no list), choose up to eight, pick who answers, and start a session.

import { call, listPersonas } from "./api.js";
import { updateControls } from "./controls.js";
import { avatar, h, toast, ui } from "./dom.js";
import { errorText } from "./format.js";
import { enterSession } from "./session.js";
import { state } from "./state.js";

const MAX_PERSONAS = 8;

/** Fetches the persona list again (e.g. with a new token) and shows it. */
export async function loadPersonas() {
  ui.list.dataset.state = "loading";
  ui.listStatus.textContent = "Loading personas…";
  try {
    state.personas = await listPersonas();
    ui.list.dataset.state = "ready";
    ui.listStatus.textContent = state.personas.length ? ""
      : "No personas yet. Import the shipped library with `personae personas import` "
        + "(or a character card: `personae personas import card.png`), then reload.";
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

export function renderSelected() {
  ui.selected.replaceChildren(...[...state.selected.values()].map((p) =>
    h("li", { class: "chip", testid: "selected-persona", "data-key": p.key },
      h("span", {}, p.name),
      h("button", { type: "button", class: "chip-x", "aria-label": `Remove ${p.name}`,
                    onclick: () => toggle(p, false) }, "×"))));
  ui.policyField.hidden = state.selected.size < 2;
  ui.roundsField.hidden = ui.policy.value !== "autonomous";
  updateControls();
}

export function setupPicker() {
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
}
