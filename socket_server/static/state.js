// What the page knows, shared by its parts, and the questions they ask of it.

import { ui } from "./dom.js";

export const state = {
  personas: [],          // persona views from the REST API
  selected: new Map(),   // key (slug or id) -> {key, name, domains}
  session: null,         // {id, policy, title, personas: [{id, slug, name}]}
  bubbles: new Map(),    // message id -> bubble
  drift: new Map(),      // persona id -> drift score
  typers: new Map(),     // user name -> timer
  typingSent: false,
  typingTimer: null,
  memCursor: null,
  memMode: "list",       // "list" or "search"
  traitsGen: 0,
  memGen: 0,
};

/** Whether a server event belongs to the open session. */
export const ours = (data) => state.session && data?.session_id === state.session.id;

export function personaName(personaId) {
  return state.session?.personas.find((p) => p.id === personaId)?.name || "Persona";
}

/** The persona (id or slug) the inspector shows, or null. */
export function inspected() {
  return ui.inspect.value || null;
}
