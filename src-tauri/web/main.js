// Loads the UI module and hands it the canvas; a failure to load is shown on the page.
// eframe's web runner asks for an animation frame after every frame, even with nothing to paint,
// and WebKitGTK wakes the web process and the app's for each one: 3-5% of a core for a window
// nobody uses. Frames pass while something happens (input, an engine event) and for a second
// after; otherwise a frame a second lets egui's timed repaints (a tooltip, the blinking cursor,
// keeping the window's size) come due.
{
  const AWAKE_MS = 1000;
  const IDLE_FRAME_MS = 1000;
  const request = window.requestAnimationFrame.bind(window);
  const cancel = window.cancelAnimationFrame.bind(window);
  const parked = new Map(); // our id -> callback, waiting for a wake or the idle frame
  const passed = new Map(); // our id -> the browser's id
  let awakeUntil = 0;
  let timer = 0;
  let nextId = 1;
  const pass = (id, callback) =>
    passed.set(id, request((time) => {
      passed.delete(id);
      callback(time);
    }));
  const release = () => {
    clearTimeout(timer);
    timer = 0;
    const waiting = [...parked];
    parked.clear();
    for (const [id, callback] of waiting) pass(id, callback);
  };
  const wake = () => {
    awakeUntil = performance.now() + AWAKE_MS;
    if (parked.size > 0) release();
  };
  window.requestAnimationFrame = (callback) => {
    const id = nextId++;
    if (performance.now() < awakeUntil) {
      pass(id, callback);
    } else {
      parked.set(id, callback);
      timer ||= setTimeout(release, IDLE_FRAME_MS);
    }
    return id;
  };
  window.cancelAnimationFrame = (id) => {
    if (parked.delete(id)) return;
    const browser = passed.get(id);
    if (browser !== undefined) {
      passed.delete(id);
      cancel(browser);
    }
  };
  for (const type of ["pointerdown", "pointermove", "pointerup", "pointerleave", "wheel",
    "keydown", "keyup", "input", "compositionupdate", "paste", "focus", "blur", "resize",
    "dragover", "drop", "touchstart", "touchmove", "touchend"]) {
    window.addEventListener(type, wake, { capture: true, passive: true });
  }
  document.addEventListener("visibilitychange", wake);
  // The engine's events wake it too (the UI listens to the same event).
  window.__TAURI__?.event?.listen("dialora:event", wake);
  wake();
}

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
