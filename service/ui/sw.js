// The offline shell: the page's own files are kept in a cache so the page opens (and its
// queued uploads survive) without a network. Network first, so a new version shows at once.
// API requests are never touched: they go straight to the network.

const CACHE = 'palette-ui-v1';
const SHELL = ['./', 'index.html', 'app.css', 'main.js', 'api.js', 'poller.js', 'store.js', 'palette.js', 'exports.js', 'analysis.js'];
const shellUrls = () => new Set(SHELL.map((path) => new URL(path, self.registration.scope).href));

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  url.hash = '';
  url.search = '';
  const isShell = request.mode === 'navigate' ? url.href === self.registration.scope || shellUrls().has(url.href)
    : shellUrls().has(url.href);
  if (!isShell) return;
  const key = request.mode === 'navigate' ? new URL('./', self.registration.scope).href : url.href;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(request);
      if (response.ok) await cache.put(key, response.clone());
      return response;
    } catch (err) {
      const cached = await cache.match(key);
      if (cached) return cached;
      throw err;
    }
  })());
});
