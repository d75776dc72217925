// The only way the page talks to the service: the public HTTP API under /v1.

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

/** An API failure in words a person can read; `network` marks "no connection" failures. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, network = false, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.network = network;
    this.retryAfter = retryAfter;
  }

  /** Worth trying again later (no network, server busy or draining, a replay still in flight). */
  get retryable() {
    return this.network || this.status === 408 || this.status === 409 && this.code === 'idempotency_key_in_use'
      || this.status === 429 || this.status === 503 || this.status >= 500;
  }
}

let apiKey = null;
try { apiKey = localStorage.getItem('palette-api-key'); } catch { /* storage disabled */ }

export function setApiKey(key) {
  apiKey = key || null;
  try {
    if (apiKey) localStorage.setItem('palette-api-key', apiKey); else localStorage.removeItem('palette-api-key');
  } catch { /* storage disabled */ }
}

function authHeaders(headers = {}) {
  return apiKey ? { ...headers, Authorization: `Bearer ${apiKey}` } : headers;
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value) {
  if (value == null || value === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

const FALLBACK = {
  400: 'The request was not accepted.',
  401: 'This service needs an API key.',
  403: 'This API key may not do that.',
  404: 'The service no longer knows this job (it may have expired).',
  409: 'The job is not in a state that allows this.',
  413: 'The upload is too large for this service.',
  415: 'That file type is not supported.',
  422: 'The file could not be used.',
  429: 'The service is busy; trying again shortly.',
  503: 'The service is restarting or busy; trying again shortly.',
};

/** An ApiError from a failed response, preferring the problem+json `detail`. */
export function problemError(status, bodyText, retryAfterHeader) {
  let problem = null;
  try { problem = JSON.parse(bodyText); } catch { /* not JSON */ }
  const detail = problem && typeof problem === 'object'
    ? (problem.detail || problem.title) : null;
  const message = detail || FALLBACK[status] || `The service answered ${status}.`;
  return new ApiError(message, {
    status, code: problem?.code ?? null, retryAfter: parseRetryAfter(retryAfterHeader),
  });
}

const networkError = () => new ApiError('No network connection.', { network: true });

async function request(url, init = {}) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store', ...init, headers: authHeaders(init.headers) });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw networkError();
  }
  return response;
}

async function failed(response) {
  let text = '';
  try { text = await response.text(); } catch { /* body lost */ }
  return problemError(response.status, text, response.headers.get('Retry-After'));
}

/** Options from the form as query parameters of POST /v1/jobs. */
export function optionsQuery(options) {
  const params = new URLSearchParams();
  if (options?.colors) params.set('colors', String(options.colors));
  if (options && options.ignoreTransparent === false) params.set('alpha_threshold', '0');
  return params.toString();
}

const quoteName = (name) => String(name).replace(/[\r\n"]/g, (ch) => encodeURIComponent(ch));

/**
 * The multipart body of an upload: option fields first, then the file. Built by hand with a
 * boundary derived from the idempotency key, so a retry after a lost answer sends the very
 * same bytes and the service replays the job the first try created. The file stays a Blob
 * inside the body, so the browser streams it from disk.
 */
export function multipartBody(file, name, options, key) {
  const boundary = `----palette-${String(key ?? Math.random()).replace(/[^\w-]/g, '')}`;
  const parts = [];
  for (const [field, value] of new URLSearchParams(optionsQuery(options))) {
    parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"\r\n\r\n${value}\r\n`);
  }
  parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quoteName(name)}"\r\n`
    + `Content-Type: ${file.type || 'application/octet-stream'}\r\n\r\n`, file, `\r\n--${boundary}--\r\n`);
  return { body: new Blob(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * POST /v1/jobs with one file, over XMLHttpRequest because fetch reports no upload progress.
 * Resolves {job, location, retryAfter}; rejects with ApiError. `handle.abort()` cancels it.
 */
export function uploadJob(file, name, options, { idempotencyKey, onProgress, handle } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/jobs');
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    if (idempotencyKey) xhr.setRequestHeader('Idempotency-Key', idempotencyKey);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress?.(event.loaded, event.total);
    };
    xhr.onload = () => {
      if (xhr.status === 202 || xhr.status === 200 || xhr.status === 201) {
        let job = null;
        try { job = JSON.parse(xhr.responseText); } catch { /* empty body */ }
        resolve({
          job,
          location: xhr.getResponseHeader('Location'),
          retryAfter: parseRetryAfter(xhr.getResponseHeader('Retry-After')),
        });
      } else if (xhr.status === 0) {
        reject(networkError());
      } else {
        reject(problemError(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After')));
      }
    };
    xhr.onerror = () => reject(networkError());
    xhr.ontimeout = () => reject(networkError());
    xhr.onabort = () => reject(new ApiError('Upload stopped.', { code: 'aborted' }));
    if (handle) handle.abort = () => xhr.abort();
    const { body, contentType } = multipartBody(file, name, options, idempotencyKey);
    xhr.setRequestHeader('Content-Type', contentType);
    xhr.send(body);
  });
}

/**
 * GET /v1/jobs/{id}, conditional on the ETag we hold. Resolves
 * {notModified, job, etag, retryAfter}; a 304 costs no body.
 */
export async function getJob(jobId, etag) {
  const headers = { Accept: 'application/json' };
  if (etag) headers['If-None-Match'] = etag;
  const response = await request(`/v1/jobs/${encodeURIComponent(jobId)}`, { headers });
  const retryAfter = parseRetryAfter(response.headers.get('Retry-After'));
  if (response.status === 304) {
    return { notModified: true, job: null, etag: response.headers.get('ETag') || etag, retryAfter };
  }
  if (!response.ok) throw await failed(response);
  return { notModified: false, job: await response.json(), etag: response.headers.get('ETag'), retryAfter };
}

/** Every image's entry of a finished job: [{name, status, palette, error}]. */
export async function getResults(jobId, resultsUrl) {
  const response = await request(resultsUrl || `/v1/jobs/${encodeURIComponent(jobId)}/results`, {
    headers: { Accept: 'application/json' },
  });
  if (!response.ok) throw await failed(response);
  const body = await response.json();
  const items = Array.isArray(body) ? body : (body.items ?? body.results ?? []);
  return items;
}

/**
 * POST /v1/analyze with one image as the raw body: quality score, subject box (source pixels),
 * palettes and the theme. Resolves the analysis; rejects with ApiError. `signal` aborts it.
 */
export async function analyzeImage(file, options, { signal } = {}) {
  const params = new URLSearchParams();
  if (options?.colors) params.set('colors', String(options.colors));
  const response = await request(`/v1/analyze?${params}`, {
    method: 'POST',
    body: file,
    signal,
    headers: { Accept: 'application/json', 'Content-Type': file.type || 'application/octet-stream' },
  });
  if (!response.ok) throw await failed(response);
  return response.json();
}

/** POST /v1/jobs/{id}/cancel; resolves the job as the service now has it (or null). */
export async function cancelJob(jobId) {
  const response = await request(`/v1/jobs/${encodeURIComponent(jobId)}/cancel`, {
    method: 'POST', headers: { Accept: 'application/json' },
  });
  if (!response.ok) throw await failed(response);
  try { return await response.json(); } catch { return null; }
}
