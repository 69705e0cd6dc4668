// Loads the UI module and hands it the canvas; a failure to load is shown on the page.
const status = document.getElementById("loading");
try {
  const ui = await import("./dialora_ui.js");
  // The bytes rather than the URL: WebKitGTK's compile-while-downloading does not take the
  // app's own scheme.
  const response = await fetch(new URL("dialora_ui_bg.wasm", import.meta.url));
  if (!response.ok) {
    throw new Error(`dialora_ui_bg.wasm: ${response.status} ${response.statusText}`);
  }
  await ui.default({ module_or_path: await response.arrayBuffer() });
  status?.remove();
  ui.start(document.getElementById("dialora"));
} catch (error) {
  status.textContent = `Dialora could not load its interface: ${error}`;
}
