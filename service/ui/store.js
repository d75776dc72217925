// What survives a reload, in IndexedDB: one record per job card, and an outbox of requests
// that could not be sent yet (uploads keep their file as a Blob, so nothing queued is lost).

const DB_NAME = 'palette-ui';
const DB_VERSION = 1;
let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains('cards')) db.createObjectStore('cards', { keyPath: 'key' });
        if (!db.objectStoreNames.contains('outbox')) db.createObjectStore('outbox', { keyPath: 'id' });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return dbPromise;
}

async function run(storeName, mode, action) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(storeName, mode);
    const request = action(tx.objectStore(storeName));
    tx.oncomplete = () => resolve(request?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

const byCreated = (a, b) => (a.createdAt - b.createdAt) || String(a.key ?? a.id).localeCompare(String(b.key ?? b.id));

export const cards = {
  all: async () => ((await run('cards', 'readonly', (s) => s.getAll())) ?? []).sort(byCreated),
  put: (card) => run('cards', 'readwrite', (s) => s.put(card)),
  delete: (key) => run('cards', 'readwrite', (s) => s.delete(key)),
};

export const outbox = {
  all: async () => ((await run('outbox', 'readonly', (s) => s.getAll())) ?? []).sort(byCreated),
  put: (item) => run('outbox', 'readwrite', (s) => s.put(item)),
  delete: (id) => run('outbox', 'readwrite', (s) => s.delete(id)),
};
