// The page: drop / pick / paste files, one card per upload, palettes to copy and export.
// Everything goes through the public HTTP API (api.js); state that must survive a reload
// lives in IndexedDB (store.js); job status comes from poller.js. A single image, once its
// palette is done, is also analysed (analysis.js) while this page still holds the file.

import { renderAnalysis } from './analysis.js';
import { ApiError, TERMINAL, analyzeImage, cancelJob, setApiKey, uploadJob } from './api.js';
import { bulkArchive, slug } from './exports.js';
import { el, paletteFromHash, renderPalette } from './palette.js';
import { isVisible, watchJob } from './poller.js';
import { cards as cardStore, outbox } from './store.js';

const STATE_LABELS = {
  waiting: 'Waiting for network',
  pending: 'Waiting to upload',
  uploading: 'Uploading',
  queued: 'Queued',
  running: 'Processing',
  succeeded: 'Done',
  failed: 'Failed',
  canceled: 'Canceled',
  rejected: 'Not accepted',
  expired: 'No longer on the server',
};
const FINISHED_LOCAL = new Set([...TERMINAL, 'rejected', 'expired']);
const ACTIVE_LOCAL = new Set(['waiting', 'pending', 'uploading']);
const OPEN_PALETTES_AT_MOST = 4;
const PALETTE_PAGE = 100;

const $ = (selector) => document.querySelector(selector);
const cards = new Map(); // key -> card record (persisted)
const views = new Map(); // key -> {root, ...elements}
const uploads = new Map(); // key -> {abort} of the upload in flight
const stoppers = new Map(); // key -> stop function of the job watcher
const imageFiles = new Map(); // key -> the chosen image (not archives), for its analysis and thumbnail
const analyses = new Map(); // key -> {status, analysis, error, url, controller}; this page only

// ---------------------------------------------------------------------------------- options

const options = loadOptions();

function loadOptions() {
  const defaults = { colors: 8, ignoreTransparent: true, order: 'share' };
  try {
    return { ...defaults, ...JSON.parse(localStorage.getItem('palette-options') || '{}') };
  } catch {
    return defaults;
  }
}

function saveOptions() {
  try { localStorage.setItem('palette-options', JSON.stringify(options)); } catch { /* ignore */ }
}

function wireOptions() {
  $('.options').addEventListener('submit', (e) => e.preventDefault());
  const colors = $('#opt-colors');
  const transparent = $('#opt-transparent');
  colors.value = String(options.colors);
  transparent.checked = options.ignoreTransparent;
  document.querySelector(`input[name="order"][value="${options.order}"]`).checked = true;
  colors.addEventListener('change', () => {
    const n = Math.round(Number(colors.value));
    if (Number.isFinite(n) && n >= 1) options.colors = Math.min(n, Number(colors.max) || 64);
    colors.value = String(options.colors);
    saveOptions();
  });
  const key = $('#opt-api-key');
  try { key.value = localStorage.getItem('palette-api-key') ?? ''; } catch { /* ignore */ }
  key.addEventListener('change', () => { setApiKey(key.value.trim()); flushOutbox(); });
  transparent.addEventListener('change', () => { options.ignoreTransparent = transparent.checked; saveOptions(); });
  for (const radio of document.querySelectorAll('input[name="order"]')) {
    radio.addEventListener('change', () => {
      if (!radio.checked) return;
      options.order = radio.value;
      saveOptions();
      for (const key of cards.keys()) renderPalettes(key);
      renderShared();
    });
  }
}

// ------------------------------------------------------------------------ feedback helpers

let announceTimer = null;
/** Say something to screen readers (polite live region) without stealing focus. */
function announce(message) {
  const region = $('#announcer');
  clearTimeout(announceTimer);
  region.textContent = '';
  // A fresh text node after a tick makes repeated messages be read again.
  announceTimer = setTimeout(() => { region.textContent = message; }, 50);
}

let toastTimer = null;
function toast(message) {
  const node = $('#toast');
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 2500);
  announce(message);
}

async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Older browsers, or a page not in a secure context: the textarea + execCommand route.
    const area = el('textarea', { class: 'visually-hidden', 'aria-hidden': 'true' });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) { toast(`Could not copy ${what}`); return; }
  }
  toast(`Copied ${what}`);
}

function download(name, data, type) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const link = el('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const paletteActions = {
  copy: copyText,
  download,
  share: (url, name) => copyText(url, `share link for ${name}`),
};

// ---------------------------------------------------------------------------- job cards

function newKey() {
  return crypto.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function humanSize(bytes) {
  if (!Number.isFinite(bytes)) return '';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// Other tabs of the page show the same cards: every saved change is told to them.
const tabs = 'BroadcastChannel' in self ? new BroadcastChannel('palette-cards') : null;

async function persist(card) {
  try { await cardStore.put(card); } catch (err) { console.warn('could not save card', err); }
  tabs?.postMessage({ type: 'card', card });
}

tabs?.addEventListener('message', ({ data }) => {
  if (data?.type === 'remove') {
    if (cards.has(data.key)) removeCard(data.key, { local: false });
  } else if (data?.type === 'card' && data.card?.key) {
    const { key } = data.card;
    const before = cards.get(key);
    // This tab's own upload in flight knows better than the news.
    if (uploads.has(key)) return;
    cards.set(key, { ...data.card });
    renderCard(key);
    if (before && before.state !== data.card.state) announceState(data.card);
    follow(key);
  }
});

function buildCard(card) {
  const title = el('h2', { class: 'card-title', id: `title-${card.key}` }, card.name);
  const status = el('span', { class: 'status' });
  const meta = el('p', { class: 'card-meta' });
  const uploadBar = el('progress', { class: 'upload-bar', max: '100', 'aria-labelledby': `upload-label-${card.key} title-${card.key}` });
  const processBar = el('progress', { class: 'processing-bar', max: '100', 'aria-labelledby': `process-label-${card.key} title-${card.key}` });
  const uploadText = el('span', { class: 'bar-text' });
  const processText = el('span', { class: 'bar-text' });
  const error = el('p', { class: 'card-error', hidden: true });
  const cancel = el('button', { type: 'button', class: 'button secondary', 'data-action': 'cancel', onclick: () => cancelCard(card.key) }, 'Cancel');
  const dismiss = el('button', { type: 'button', class: 'button secondary', 'data-action': 'dismiss', onclick: () => dismissCard(card.key) }, 'Dismiss');
  const bulk = el('button', { type: 'button', class: 'button', 'data-action': 'download-all', onclick: () => downloadAll(card.key) }, 'Download all (ZIP)');
  const resultsLink = el('a', { class: 'link-button', 'data-action': 'results-json', target: '_blank', rel: 'noopener' }, 'Results JSON');
  const palettes = el('div', { class: 'palettes' });
  const analysis = el('div', { class: 'analysis-slot' });
  const root = el('li', { class: 'card', id: `card-${card.key}`, 'data-key': card.key, 'data-file-name': card.name, 'aria-labelledby': `title-${card.key}` },
    el('div', { class: 'card-head' }, title, status),
    meta,
    el('div', { class: 'bars' },
      el('div', { class: 'bar' }, el('span', { class: 'bar-label', id: `upload-label-${card.key}` }, 'Upload'), uploadBar, uploadText),
      el('div', { class: 'bar' }, el('span', { class: 'bar-label', id: `process-label-${card.key}` }, 'Processing'), processBar, processText)),
    error,
    el('div', { class: 'card-actions' }, cancel, bulk, resultsLink, dismiss),
    palettes,
    analysis);
  const view = { root, status, meta, uploadBar, processBar, uploadText, processText, error, cancel, dismiss, bulk, resultsLink, palettes, analysis, renderedResults: null };
  views.set(card.key, view);
  $('#cards').append(root);
  return view;
}

function progressOf(job) {
  const p = job?.progress ?? {};
  const total = Number(p.total) || 0;
  const finished = (Number(p.done) || 0) + (Number(p.failed) || 0) + (Number(p.skipped) || 0);
  return { total, finished: Math.min(finished, total || finished), done: Number(p.done) || 0, failed: Number(p.failed) || 0, skipped: Number(p.skipped) || 0 };
}

function renderCard(key) {
  const card = cards.get(key);
  if (!card) return;
  const view = views.get(key) ?? buildCard(card);
  const { state, job } = card;
  view.root.dataset.state = state;
  if (card.jobId) view.root.dataset.jobId = card.jobId;
  view.status.textContent = card.cancelQueued ? 'Cancel waiting for network' : STATE_LABELS[state] ?? state;
  view.status.className = `status status-${state}`;

  const metaParts = [humanSize(card.size)];
  if (card.jobId) metaParts.push(`job ${card.jobId}`);
  view.meta.textContent = metaParts.filter(Boolean).join(' · ');

  // Upload bar: bytes sent; full once the service has the file.
  if (card.jobId) {
    view.uploadBar.value = 100;
    view.uploadText.textContent = 'Sent';
  } else if (state === 'uploading' && card.uploadTotal) {
    const pct = Math.floor((card.uploadLoaded / card.uploadTotal) * 100);
    view.uploadBar.value = pct;
    view.uploadText.textContent = `${pct}%`;
  } else if (state === 'uploading') {
    view.uploadBar.removeAttribute('value');
    view.uploadText.textContent = '';
  } else {
    view.uploadBar.value = 0;
    view.uploadText.textContent = state === 'waiting' ? 'Waiting for network' : state === 'rejected' ? 'Not accepted' : '';
  }

  // Processing bar: from the job's progress.
  const progress = progressOf(job);
  if (TERMINAL.has(state)) {
    view.processBar.value = state === 'succeeded' || progress.total === 0 ? 100 : Math.round((progress.finished / progress.total) * 100);
  } else if (progress.total > 0) {
    view.processBar.value = Math.round((progress.finished / progress.total) * 100);
  } else if (state === 'queued' || state === 'running') {
    view.processBar.removeAttribute('value');
  } else {
    view.processBar.value = 0;
  }
  const counts = [];
  if (progress.total) counts.push(`${progress.done}/${progress.total} images`);
  if (progress.failed) counts.push(`${progress.failed} failed`);
  if (progress.skipped) counts.push(`${progress.skipped} skipped`);
  view.processText.textContent = counts.join(', ');

  view.error.hidden = !card.error;
  view.error.textContent = card.error ?? '';

  const active = ACTIVE_LOCAL.has(state) || state === 'queued' || state === 'running';
  view.cancel.hidden = !active || card.cancelQueued;
  view.cancel.textContent = card.jobId ? 'Cancel' : 'Remove';
  view.dismiss.hidden = active;
  const okResults = (card.results ?? []).filter((r) => r.palette);
  view.bulk.hidden = okResults.length < 2;
  view.resultsLink.hidden = !(card.results && job?.results_url);
  if (job?.results_url) view.resultsLink.href = job.results_url;

  if (view.renderedResults !== card.results) renderPalettes(key);
  renderSummary();
  maybeAnalyze(key);
}

// ------------------------------------------------------------------------------ analysis

const isArchive = (file) => /\.zip$/i.test(file.name || '') || /zip/i.test(file.type || '');

/** Analyse a card's image once its one palette is done, if this page has the file. */
function maybeAnalyze(key) {
  const card = cards.get(key);
  if (!card || card.state !== 'succeeded' || !imageFiles.has(key) || analyses.has(key)) return;
  const items = card.results ?? [];
  if (items.length === 1 && items[0].palette) analyze(key);
}

async function analyze(key) {
  const card = cards.get(key);
  const file = imageFiles.get(key);
  if (!card || !file) return;
  const before = analyses.get(key);
  const entry = { status: 'loading', url: before?.url ?? URL.createObjectURL(file), controller: new AbortController() };
  analyses.set(key, entry);
  renderAnalysisView(key);
  try {
    entry.analysis = await analyzeImage(file, card.options, { signal: entry.controller.signal });
    // Not announced: the card's "done" just was, and the analysis is there to read.
    entry.status = 'done';
  } catch (err) {
    if (err?.name === 'AbortError') return;
    entry.status = 'error';
    entry.error = err?.message ?? String(err);
    announce(`${card.name}: analysis failed. ${entry.error}`);
  }
  if (analyses.get(key) === entry) renderAnalysisView(key);
}

function renderAnalysisView(key) {
  const card = cards.get(key);
  const view = views.get(key);
  const entry = analyses.get(key);
  if (!card || !view || !entry) return;
  const retrying = view.analysis.contains(document.activeElement);
  view.analysis.replaceChildren(renderAnalysis(card.name, entry, { retry: () => analyze(key), copy: copyText }));
  // The button pressed is gone: keep keyboard focus in the section, on its heading.
  if (retrying) {
    const heading = view.analysis.querySelector('.analysis-title');
    heading.tabIndex = -1;
    heading.focus();
  }
}

function forgetAnalysis(key) {
  const entry = analyses.get(key);
  entry?.controller?.abort();
  if (entry?.url) URL.revokeObjectURL(entry.url);
  analyses.delete(key);
  imageFiles.delete(key);
}

function renderPalettes(key) {
  const card = cards.get(key);
  const view = views.get(key);
  if (!card || !view) return;
  const wasOpen = view.palettes.querySelector('details.bulk')?.open ?? false;
  view.renderedResults = card.results;
  view.palettes.replaceChildren();
  if (!card.results) return;
  const items = card.results;
  const renderItem = (item) => {
    const name = item.name ?? card.name;
    if (item.palette) {
      return renderPalette(name, item.palette, {
        order: options.order, actions: paletteActions, headingLevel: 3,
        hideName: items.length === 1 && name === card.name,
      });
    }
    const reason = item.error?.detail ?? item.error?.message ?? (item.status === 'skipped' ? 'Not an image; skipped.' : 'No palette.');
    return el('p', { class: `item-error${item.status === 'skipped' ? ' skipped' : ''}` }, el('strong', {}, name), `: ${reason}`);
  };
  if (items.length <= OPEN_PALETTES_AT_MOST) {
    view.palettes.append(...items.map(renderItem));
    return;
  }
  // A bulk job: folded, and drawn a page at a time (an archive may hold thousands).
  view.shown ??= PALETTE_PAGE;
  const count = items.filter((r) => r.palette).length;
  const list = el('div', { class: 'bulk-list' });
  const more = el('button', { type: 'button', class: 'button secondary show-more', 'data-action': 'show-more' });
  const fill = () => {
    const to = Math.min(items.length, view.shown);
    list.append(...items.slice(list.childElementCount, to).map(renderItem));
    const left = items.length - to;
    more.hidden = left <= 0;
    more.textContent = `Show ${Math.min(PALETTE_PAGE, left)} more (${left} not shown)`;
  };
  more.addEventListener('click', () => { view.shown += PALETTE_PAGE; fill(); });
  view.palettes.append(el('details', { class: 'bulk', open: wasOpen },
    el('summary', {}, `${count} palette${count === 1 ? '' : 's'}`, items.length > count ? ` (${items.length - count} without)` : ''),
    list, more));
  fill();
}

function renderSummary() {
  const list = [...cards.values()];
  const summary = $('#summary');
  if (!list.length) { summary.textContent = 'No files yet.'; return; }
  let images = 0;
  let done = 0;
  let failed = 0;
  let finishedJobs = 0;
  let waiting = 0;
  for (const card of list) {
    // A canceled job's images are not waiting to be done any more.
    const p = card.state === 'canceled' ? progressOf(null) : progressOf(card.job);
    images += p.total;
    done += p.done;
    failed += p.failed;
    if (FINISHED_LOCAL.has(card.state)) finishedJobs += 1;
    if (card.state === 'waiting') waiting += 1;
    if (card.state === 'rejected') failed += 1;
  }
  const parts = [`${finishedJobs}/${list.length} jobs finished`];
  if (images || failed) parts.unshift(`${done}/${images} done, ${failed} failed`);
  if (waiting) parts.push(`${waiting} waiting for network`);
  summary.textContent = parts.join(' · ');
}

function update(key, changes, { save = true } = {}) {
  const card = cards.get(key);
  if (!card) return null;
  const before = card.state;
  Object.assign(card, changes);
  renderCard(key);
  if (save) persist(card);
  if (before !== card.state) announceState(card);
  return card;
}

function announceState(card) {
  let message = `${card.name}: ${STATE_LABELS[card.state] ?? card.state}`;
  if (card.state === 'failed' || card.state === 'rejected') message += card.error ? `. ${card.error}` : '';
  announce(message);
}

function jobError(job) {
  const e = job?.error;
  if (!e) return null;
  if (typeof e === 'string') return e;
  return e.detail ?? e.message ?? e.title ?? e.code ?? null;
}

// ---------------------------------------------------------------------------- the flow

async function addFiles(fileList) {
  const files = [...fileList].filter((f) => f && f.size !== undefined);
  for (const file of files) {
    const key = newKey();
    const name = file.name || `pasted-${new Date().toISOString().replace(/[:.]/g, '-')}.png`;
    const card = {
      key, name, size: file.size, createdAt: Date.now(), options: { ...options },
      jobId: null, state: 'pending', job: null, etag: null, results: null, error: null,
    };
    if (!isArchive(file)) imageFiles.set(key, file);
    cards.set(key, card);
    renderCard(key);
    await persist(card);
    const item = { id: key, kind: 'upload', key, name, file, options: card.options, createdAt: card.createdAt };
    try {
      await outbox.put(item);
    } catch (err) {
      // No room to keep the file (quota): still send it now, it just won't survive a reload.
      console.warn('could not queue the file', err);
      memoryOutbox.set(key, item);
    }
  }
  if (files.length) announce(`${files.length} file${files.length === 1 ? '' : 's'} added`);
  flushOutbox();
}

const memoryOutbox = new Map();
let flushing = null;
let flushAgain = false;
let retryTimer = null;
let backoffSeconds = 2;

/** Send what the outbox holds, oldest first; stop at the first failure for lack of network. */
function flushOutbox() {
  if (flushing) { flushAgain = true; return flushing; }
  flushing = (async () => {
    do {
      flushAgain = false;
      await flushOnce();
    } while (flushAgain);
  })().finally(() => { flushing = null; });
  return flushing;
}

/** One tab at a time sends the shared outbox; a tab that finds it busy looks again later. */
async function flushOnce() {
  if (!navigator.locks) return flushItems();
  await navigator.locks.request('palette-outbox', { ifAvailable: true }, async (lock) => {
    if (lock) await flushItems();
    else {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(flushOutbox, backoffSeconds * 1000);
    }
  });
}

async function flushItems() {
  clearTimeout(retryTimer);
  let items;
  try { items = await outbox.all(); } catch { items = []; }
  items = [...items, ...memoryOutbox.values()].sort((a, b) => a.createdAt - b.createdAt);
  for (const item of items) {
    const outcome = item.kind === 'cancel' ? await sendCancel(item) : await sendUpload(item);
    if (outcome?.blocked) return;
    if (outcome?.retryAfter != null) {
      // Blocked (no network, or the service asked us to wait): the rest waits too.
      if (outcome.network) {
        for (const other of items) {
          if (other.kind === 'upload' && cards.get(other.key)?.state === 'pending') update(other.key, { state: 'waiting' });
        }
      }
      const wait = outcome.network ? backoffSeconds : Math.max(outcome.retryAfter, 1);
      if (outcome.network) backoffSeconds = Math.min(backoffSeconds * 2, 60);
      retryTimer = setTimeout(flushOutbox, wait * 1000);
      return;
    }
  }
  backoffSeconds = 2;
}

async function dropFromOutbox(id) {
  memoryOutbox.delete(id);
  try { await outbox.delete(id); } catch { /* already gone */ }
}

async function sendUpload(item) {
  const card = cards.get(item.key);
  if (!card || card.jobId) { await dropFromOutbox(item.id); return null; }
  const handle = {};
  uploads.set(item.key, handle);
  update(item.key, { state: 'uploading', uploadLoaded: 0, uploadTotal: item.file.size, error: null }, { save: false });
  try {
    const { job, location, retryAfter } = await uploadJob(item.file, item.name, item.options, {
      idempotencyKey: item.key,
      handle,
      onProgress: (loaded, total) => update(item.key, { uploadLoaded: loaded, uploadTotal: total }, { save: false }),
    });
    const jobId = job?.id ?? location?.split('/').pop();
    await dropFromOutbox(item.id);
    update(item.key, { jobId, job, state: job?.status ?? 'queued', etag: null, error: null });
    follow(item.key, retryAfter);
    return null;
  } catch (err) {
    if (!cards.has(item.key)) return null; // removed while uploading
    if (err.code === 'aborted') return null;
    if (err instanceof ApiError && err.retryable) {
      update(item.key, { state: 'waiting', error: err.network ? null : err.message });
      return { retryAfter: err.retryAfter ?? backoffSeconds, network: err.network };
    }
    if (err.status === 401 || err.status === 403) {
      // Kept: it goes as soon as a key is entered.
      update(item.key, { state: 'waiting', error: err.message });
      $('#api-key-box').open = true;
      return { blocked: true };
    }
    await dropFromOutbox(item.id);
    update(item.key, { state: 'rejected', error: err.message });
    return null;
  } finally {
    uploads.delete(item.key);
  }
}

async function sendCancel(item) {
  try {
    const job = await cancelJob(item.jobId);
    await dropFromOutbox(item.id);
    if (cards.has(item.key)) {
      const changes = { cancelQueued: false, error: null };
      if (job?.status) Object.assign(changes, { job, state: job.status });
      update(item.key, changes);
      follow(item.key);
    }
    return null;
  } catch (err) {
    if (err instanceof ApiError && err.retryable) {
      if (cards.has(item.key)) update(item.key, { cancelQueued: true });
      return { retryAfter: err.retryAfter ?? backoffSeconds, network: err.network };
    }
    await dropFromOutbox(item.id);
    if (cards.has(item.key)) update(item.key, { cancelQueued: false, error: err.message });
    return null;
  }
}

/** Keep a card in step with its job until the job is finished and its results are shown. */
function follow(key, firstDelay = 0) {
  const card = cards.get(key);
  if (!card?.jobId || stoppers.has(key)) return;
  if (FINISHED_LOCAL.has(card.state) && (card.results || !card.job?.results_url)) return;
  const stop = watchJob(card.jobId, {
    etag: card.etag,
    status: card.state,
    resultsUrl: card.job?.results_url,
    firstDelay,
    onJob: (job, etag) => update(key, { job, etag, state: job.status, error: jobError(job) }),
    onResults: (results) => {
      stoppers.delete(key);
      update(key, { results });
      const c = cards.get(key);
      if (c?.state === 'succeeded') {
        const n = results.filter((r) => r.palette).length;
        announce(`${c.name}: done, ${n} palette${n === 1 ? '' : 's'}`);
      }
    },
    onError: (err, willRetry) => {
      if (!willRetry) stoppers.delete(key);
      const changes = { error: err.network ? 'No network connection; will keep trying.' : err.message };
      if (err.status === 404) changes.state = 'expired';
      update(key, changes, { save: !willRetry });
    },
    onRecover: () => update(key, { error: jobError(cards.get(key)?.job) }, { save: false }),
  });
  stoppers.set(key, stop);
}

async function cancelCard(key) {
  const card = cards.get(key);
  if (!card) return;
  if (!card.jobId) {
    uploads.get(key)?.abort?.();
    await dropFromOutbox(key);
    removeCard(key);
    announce(`${card.name} removed`);
    return;
  }
  const item = { id: `cancel:${card.jobId}`, kind: 'cancel', key, jobId: card.jobId, createdAt: Date.now() };
  try { await outbox.put(item); } catch { memoryOutbox.set(item.id, item); }
  flushOutbox();
}

function removeCard(key, { local = true } = {}) {
  stoppers.get(key)?.();
  stoppers.delete(key);
  forgetAnalysis(key);
  cards.delete(key);
  const view = views.get(key);
  const next = view?.root.nextElementSibling ?? view?.root.previousElementSibling;
  const hadFocus = view?.root.contains(document.activeElement);
  view?.root.remove();
  views.delete(key);
  renderSummary();
  if (local) {
    cardStore.delete(key).catch(() => {});
    tabs?.postMessage({ type: 'remove', key });
  }
  // Keep keyboard users somewhere sensible after the card disappears.
  if (local || hadFocus) (next?.querySelector('button:not([hidden])') ?? $('#file-input')).focus();
}

function dismissCard(key) {
  const card = cards.get(key);
  removeCard(key);
  if (card) announce(`${card.name} dismissed`);
}

function downloadAll(key) {
  const card = cards.get(key);
  if (!card?.results) return;
  download(`${slug(card.name)}-palettes.zip`, bulkArchive(card.results), 'application/zip');
}

// --------------------------------------------------------------------------- shared view

let shared = null;

function renderShared() {
  const host = $('#shared');
  host.replaceChildren();
  host.hidden = !shared;
  if (!shared) return;
  host.append(
    el('div', { class: 'card-head' },
      el('h2', { class: 'card-title' }, 'Shared palette'),
      el('button', { type: 'button', class: 'button secondary', onclick: () => { shared = null; history.replaceState(null, '', location.pathname); renderShared(); } }, 'Close')),
    renderPalette(shared.name, shared.palette, { order: options.order, actions: paletteActions, headingLevel: 3 }));
}

function readShared() {
  shared = paletteFromHash(location.hash);
  renderShared();
}

// ------------------------------------------------------------------------------- inputs

function wireInputs() {
  const zone = $('#drop-zone');
  const input = $('#file-input');
  input.addEventListener('change', () => {
    addFiles(input.files);
    input.value = '';
  });
  let depth = 0;
  zone.addEventListener('dragenter', (e) => { e.preventDefault(); depth += 1; zone.classList.add('dragging'); });
  zone.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) zone.classList.remove('dragging'); });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'; });
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dragging');
    addFiles(e.dataTransfer?.files ?? []);
  });
  // A file dropped beside the zone must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    if (!zone.contains(e.target)) addFiles(e.dataTransfer?.files ?? []);
  });
  document.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (!files.length) return;
    e.preventDefault();
    addFiles(files.map((f, i) => (f.name && f.name !== 'image.png' ? f
      : new File([f], `pasted-${new Date().toISOString().replace(/[:.]/g, '-')}${i ? `-${i}` : ''}.${(f.type.split('/')[1] || 'png').replace('jpeg', 'jpg')}`, { type: f.type }))));
  });
}

function wireNetwork() {
  const banner = $('#offline');
  const show = () => { banner.hidden = navigator.onLine; };
  window.addEventListener('online', () => { show(); backoffSeconds = 2; flushOutbox(); });
  window.addEventListener('offline', show);
  window.addEventListener('focus', () => flushOutbox());
  document.addEventListener('visibilitychange', () => { if (isVisible()) flushOutbox(); });
  window.addEventListener('hashchange', readShared);
  show();
}

// --------------------------------------------------------------------------------- start

async function restore() {
  let saved = [];
  try { saved = await cardStore.all(); } catch (err) { console.warn('no saved cards', err); }
  for (const card of saved) {
    // A page closed mid-upload: the file is still in the outbox and goes again.
    if (card.state === 'uploading' || card.state === 'pending') card.state = 'waiting';
    cards.set(card.key, card);
    renderCard(card.key);
  }
  for (const card of saved) follow(card.key);
  renderSummary();
}

async function start() {
  wireOptions();
  wireInputs();
  wireNetwork();
  readShared();
  await restore();
  document.body.dataset.ready = 'true';
  flushOutbox();
  if ('serviceWorker' in navigator && window.isSecureContext) {
    navigator.serviceWorker.register('sw.js').catch((err) => console.warn('no offline shell', err));
  }
}

start();
