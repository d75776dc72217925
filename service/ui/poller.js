// Background polling of job status.
//
// - Polls only while the page is visible (Page Visibility API) and polls at once when it
//   becomes visible again.
// - Waits as long as the service's Retry-After asks between polls, and sends If-None-Match so
//   an unchanged job is a bodiless 304.
// - One tab polls a job at a time: the poller holds a Web Lock named after the job while it
//   polls (released when the tab is hidden or closed), and shares what it learns with the
//   other tabs over a BroadcastChannel.

import { getJob, getResults, TERMINAL } from './api.js';

const DEFAULT_DELAY_S = 1;
const MAX_BACKOFF_S = 30;

const channel = 'BroadcastChannel' in self ? new BroadcastChannel('palette-jobs') : null;
const watchers = new Map(); // job id -> Watcher

channel?.addEventListener('message', (event) => {
  const message = event.data;
  watchers.get(message?.jobId)?.receive(message);
});

export const isVisible = () => document.visibilityState !== 'hidden';

function whenVisible() {
  if (isVisible()) return Promise.resolve();
  return new Promise((resolve) => {
    const onChange = () => {
      if (!isVisible()) return;
      document.removeEventListener('visibilitychange', onChange);
      resolve();
    };
    document.addEventListener('visibilitychange', onChange);
  });
}

/** Sleep up to `seconds`; wake early when the tab is hidden, the network returns, or on stop. */
function nap(seconds, watcher) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
      window.removeEventListener('online', done);
      watcher.wake = null;
      resolve();
    };
    const onVisibility = () => { if (!isVisible()) done(); };
    const timer = setTimeout(done, seconds * 1000);
    document.addEventListener('visibilitychange', onVisibility);
    window.addEventListener('online', done);
    watcher.wake = done;
  });
}

async function withJobLock(jobId, task) {
  if (!navigator.locks) return task();
  return navigator.locks.request(`palette-job:${jobId}`, task);
}

class Watcher {
  constructor(jobId, { etag, status, resultsUrl, firstDelay, onJob, onResults, onError, onRecover }) {
    this.jobId = jobId;
    this.etag = etag ?? null;
    this.needResults = false;
    this.learn({ status: status ?? null, results_url: resultsUrl });
    this.callbacks = { onJob, onResults, onError, onRecover };
    this.stopped = false;
    this.failures = 0;
    this.wake = null;
    this.firstDelay = firstDelay ?? 0;
  }

  get finished() {
    return this.stopped || (TERMINAL.has(this.status) && !this.needResults);
  }

  stop() {
    this.stopped = true;
    this.wake?.();
  }

  /** Another tab polled this job: take its news as ours. */
  receive(message) {
    if (message.type === 'job') {
      this.etag = message.etag ?? this.etag;
      this.learn(message.job);
      this.callbacks.onJob(message.job, this.etag);
    } else if (message.type === 'results') {
      this.needResults = false;
      this.callbacks.onResults(message.results);
    }
  }

  /** Take in a job's status and results URL (from the service, another tab, or the caller). */
  learn(job) {
    this.status = job.status;
    this.resultsUrl = job.results_url ?? null;
    // Once finished, there are results to fetch only when the service kept some: a canceled
    // job, for one, has none.
    if (TERMINAL.has(this.status)) this.needResults = Boolean(this.resultsUrl);
  }

  publish(message) {
    channel?.postMessage({ jobId: this.jobId, ...message });
  }

  async run() {
    while (!this.finished) {
      await whenVisible();
      if (this.finished) break;
      if (this.firstDelay) {
        // The Retry-After of the 202 that created the job.
        await nap(this.firstDelay, this);
        this.firstDelay = 0;
        continue;
      }
      await withJobLock(this.jobId, async () => {
        while (!this.finished && isVisible()) {
          const delay = await this.pollOnce();
          if (this.finished || !isVisible()) break;
          await nap(delay, this);
        }
      });
    }
    watchers.delete(this.jobId);
  }

  /** One round trip; returns how many seconds to wait before the next. */
  async pollOnce() {
    try {
      if (!TERMINAL.has(this.status)) {
        const answer = await getJob(this.jobId, this.etag);
        if (this.stopped) return 0;
        if (!answer.notModified) {
          this.etag = answer.etag;
          this.learn(answer.job);
          this.callbacks.onJob(answer.job, this.etag);
          this.publish({ type: 'job', job: answer.job, etag: this.etag });
        }
        if (this.failures) this.callbacks.onRecover?.();
        this.failures = 0;
        if (!TERMINAL.has(this.status)) return answer.retryAfter ?? DEFAULT_DELAY_S;
      }
      if (this.needResults) {
        const results = await getResults(this.jobId, this.resultsUrl);
        if (this.stopped) return 0;
        this.needResults = false;
        this.callbacks.onResults(results);
        this.publish({ type: 'results', results });
      }
      return 0;
    } catch (err) {
      if (this.stopped) return 0;
      this.failures += 1;
      const retryable = err.retryable;
      this.callbacks.onError(err, retryable);
      if (!retryable) {
        this.stopped = true;
        return 0;
      }
      return err.retryAfter ?? Math.min(MAX_BACKOFF_S, DEFAULT_DELAY_S * 2 ** (this.failures - 1));
    }
  }
}

/**
 * Follow a job until it is finished and its results are in. Callbacks:
 * onJob(job, etag), onResults(results), onError(ApiError, willRetry) and onRecover() after
 * errors. Returns a stop function.
 */
export function watchJob(jobId, options) {
  const existing = watchers.get(jobId);
  if (existing && !existing.stopped) return () => existing.stop();
  const watcher = new Watcher(jobId, options);
  watchers.set(jobId, watcher);
  watcher.run();
  return () => watcher.stop();
}
