// The Personae web client: pick personas, chat with streamed replies, inspect traits and
// memories. Speaks only what docs/protocol.md documents, plus GET /api/personas.
//
// This entry wires the parts together and starts them: topbar.js (connection and settings),
// picker.js (choosing personas), session.js and chat.js (the conversation), inspector.js
// (traits and memories). They share state.js and the elements in dom.js.

import { socket } from "./api.js";
import { setupChat } from "./chat.js";
import { setupInspector } from "./inspector.js";
import { loadPersonas, renderSelected, setupPicker } from "./picker.js";
import { setupSession } from "./session.js";
import { setupConnectionStatus, setupSettings } from "./topbar.js";

setupConnectionStatus();
setupSession();
setupSettings(() => {
  socket.connect();
  loadPersonas();
});
setupPicker();
setupChat();
setupInspector();

loadPersonas();
renderSelected();
socket.connect();
