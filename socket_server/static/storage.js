// Settings kept in this browser (display name, token); a blocked localStorage reads as empty.

export const saved = {
  get(key) {
    try { return localStorage.getItem(`personae.${key}`) || ""; } catch { return ""; }
  },
  set(key, value) {
    try { localStorage.setItem(`personae.${key}`, value); } catch { /* private mode */ }
  },
};
