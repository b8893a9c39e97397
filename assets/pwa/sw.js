// AccessAtlas's service worker: the app keeps working when the server cannot be reached.
//
// - The app itself (its page, scripts, styles, the worker's wasm and the model) is fetched from
//   the network first and a copy kept in SHELL; when the network fails, the copy answers.
//   The page asks for the whole set once its model is ready ("keep"), so the first visit is
//   enough.
// - "Save this area for offline" (the page) writes the server's own rendered tiles and the
//   view's /api/features and /api/candidates answers into a cache of its own, named AREA and
//   the view's bbox (the page lists and deletes them); they answer when the network fails.
//   Nothing else of /tiles/ or /api/ is kept.
// - Other servers' tiles (tile.openstreetmap.org's, say) are never touched: their usage
//   policies forbid prefetching and keeping them.
// - /api/health always goes to the network: the page reads its failure as "offline".
// - A tile that no saved area holds is left to the browser (no respondWith): nothing here could
//   answer it offline, and passing each of a scan's tiles through this worker cost the page's
//   cores time the model needed.
// Only GET requests are handled; a tag, a prediction and an export never need the network.
const SHELL = "accessatlas-shell-v1";
const AREA = "accessatlas-area-v1";

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("accessatlas-") && key !== SHELL && !key.startsWith(AREA)) {
        await caches.delete(key);
      }
    }
    await self.clients.claim();
  })());
});

const scope = () => new URL(self.registration.scope);

// The path below the app's scope ("tiles/19/1/2.png", "api/model", "" for the page).
function inScope(url) {
  const base = scope();
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return null;
  return url.pathname.slice(base.pathname.length);
}

// The cache key of a request: every page address (any query, any #map=) is the app's page.
function key(request) {
  return request.mode === "navigate" ? scope().href : request.url;
}

// The addresses of the tiles the saved areas hold, read from their caches; null until read (a
// tile then passes through here, as any might be saved). The page says "areas" after it saves
// or deletes one.
let savedTiles = null;
let areasRead = 0;
async function readSavedTiles() {
  const read = ++areasRead;
  try {
    const urls = new Set();
    for (const name of await caches.keys()) {
      if (!name.startsWith(AREA)) continue;
      for (const request of await (await caches.open(name)).keys()) urls.add(request.url);
    }
    if (read === areasRead) savedTiles = urls;
  } catch (e) {
    if (read === areasRead) savedTiles = null;
  }
}
readSavedTiles();

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const path = inScope(new URL(request.url));
  if (path === null || path === "api/health") return;
  if (path.startsWith("tiles/") && savedTiles !== null && !savedTiles.has(request.url)) return;
  const shell = !path.startsWith("tiles/") && !path.startsWith("api/") || path === "api/model";
  event.respondWith(networkFirst(request, shell));
});

async function networkFirst(request, keepInShell) {
  try {
    const response = await fetch(request);
    if (keepInShell && response.ok && response.type === "basic") {
      const copy = response.clone();
      caches.open(SHELL).then((c) => c.put(key(request), copy)).catch(() => {});
    }
    return response;
  } catch (err) {
    const kept = await caches.match(key(request));
    if (kept) return kept;
    throw err;
  }
}

// "areas": the saved areas changed (read their tiles again).
// "keep": the page's list of what the app needs (same-origin addresses). Each is fetched into
// SHELL; a worker loader's scripts and wasm are found in its text. Answers "kept" with counts.
self.addEventListener("message", (event) => {
  const msg = event.data;
  if (msg && msg.type === "areas") {
    event.waitUntil(readSavedTiles());
    return;
  }
  if (!msg || msg.type !== "keep" || !Array.isArray(msg.urls)) return;
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL);
    const queue = msg.urls.map((u) => new URL(u, scope()).href);
    const seen = new Set();
    let kept = 0;
    const failed = [];
    while (queue.length) {
      const url = queue.shift();
      if (seen.has(url) || inScope(new URL(url)) === null) continue;
      seen.add(url);
      try {
        const response = await fetch(url, { cache: "no-cache" });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        if (url.endsWith("_loader.js")) {
          const text = await response.clone().text();
          for (const m of text.matchAll(/["'`]((?:\.\/|\/)?[\w.-]+\.(?:js|wasm))["'`]/g)) {
            queue.push(new URL(m[1], url).href);
          }
        }
        await cache.put(url === scope().href ? scope().href : url, response);
        kept += 1;
      } catch (e) {
        failed.push(`${url}: ${e.message || e}`);
      }
    }
    const reply = { type: "kept", kept, failed };
    if (event.source) event.source.postMessage(reply);
  })());
});
