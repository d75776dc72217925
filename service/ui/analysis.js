// One image's analysis on screen (POST /v1/analyze): the quality score and its components as
// text, a thumbnail with the subject box drawn over it, and the theme's light and dark schemes.

import { el } from './palette.js';

const COMPONENT_LABELS = {
  sharpness: 'Sharpness', noise: 'Noise', exposure: 'Exposure', compression: 'Compression',
  contrast: 'Contrast', colorfulness: 'Colorfulness', resolution: 'Resolution',
};

// [fill role, text role, label]: the theme lists each pair's contrast as `<scheme>:<fg>/<bg>`.
const THEME_ROLES = [
  ['primary', 'on_primary', 'Primary'],
  ['secondary', 'on_secondary', 'Secondary'],
  ['tertiary', 'on_tertiary', 'Tertiary'],
  ['error', 'on_error', 'Error'],
  ['primary_container', 'on_primary_container', 'Primary container'],
  ['surface', 'on_surface', 'Surface'],
];

/** The box's edges as percentages of the image, so it scales with the thumbnail. */
export function boxPercent([left, top, width, height], imageWidth, imageHeight) {
  const pct = (v, of) => `${((Number(v) / of) * 100).toFixed(3)}%`;
  return { left: pct(left, imageWidth), top: pct(top, imageHeight), width: pct(width, imageWidth), height: pct(height, imageHeight) };
}

/** A measure in at most three significant digits ("64.1", "0.0915"); "n/a" when absent. */
const measure = (v) => (v == null || !Number.isFinite(Number(v)) ? 'n/a' : String(Number(Number(v).toPrecision(3))));

const kebab = (name) => name.replace(/_/g, '-');
let headingIds = 0;

/** The theme's schemes as CSS custom properties: light on :root, dark when the system asks. */
export function themeCss(theme) {
  const lines = (colors, indent) => Object.entries(colors).map(([role, hex]) => `${indent}--theme-${kebab(role)}: ${hex};`);
  return [':root {', ...lines(theme.schemes.light, '  '), '}',
    '@media (prefers-color-scheme: dark) {', '  :root {', ...lines(theme.schemes.dark, '    '), '  }', '}', ''].join('\n');
}

function qualityBlock(quality) {
  const score = Number(quality?.score);
  const rows = Object.entries(quality?.components ?? {}).map(([key, c]) => {
    const value = Math.min(1, Math.max(0, Number(c.value) || 0));
    return el('tr', { 'data-component': key },
      el('th', { scope: 'row' }, COMPONENT_LABELS[key] ?? key),
      el('td', { class: 'component-value' },
        el('span', { class: 'meter', 'aria-hidden': 'true' }, el('span', { class: 'meter-fill', style: { width: `${value * 100}%` } })),
        el('span', { class: 'component-number' }, value.toFixed(2))),
      el('td', { class: 'component-raw' }, measure(c.raw), c.unit ? el('span', { class: 'unit' }, ` ${c.unit}`) : null));
  });
  return el('div', { class: 'quality' },
    el('h4', {}, 'Quality'),
    el('p', { class: 'quality-score' },
      el('span', { class: 'score-number', 'data-score': String(score) }, Number.isFinite(score) ? score.toFixed(0) : 'n/a'),
      el('span', { class: 'score-of' }, ' out of 100')),
    el('table', { class: 'components' },
      el('caption', { class: 'visually-hidden' }, 'Quality components: each from 0 (worst) to 1 (best), beside its raw measure'),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'Component'), el('th', { scope: 'col' }, 'Score (0–1)'), el('th', { scope: 'col' }, 'Measure'))),
      el('tbody', {}, rows)));
}

function subjectBlock(name, analysis, url) {
  const { width, height } = analysis;
  const box = analysis.subject?.box;
  const hasBox = Array.isArray(box) && box.length === 4 && width > 0 && height > 0;
  const caption = hasBox
    ? `Subject: ${box[2]} × ${box[3]} px at left ${box[0]}, top ${box[1]}, in ${width} × ${height}`
    : 'No subject box.';
  const figure = el('figure', { class: 'subject' }, el('h4', {}, 'Subject'));
  if (url && hasBox) {
    // Drawn at most 280 × 220 px, never wider than the card; the box is placed in percentages.
    const scale = Math.min(1, 280 / width, 220 / height);
    const frame = el('div', {
      class: 'thumb',
      style: { width: `${Math.max(1, Math.round(width * scale))}px`, aspectRatio: `${width} / ${height}` },
    });
    const img = el('img', { class: 'thumb-image', src: url, alt: `${name}, with its subject framed`, width: String(width), height: String(height), decoding: 'async' });
    // A format this browser cannot draw (HEIC, JPEG XL): the box stays, over a plain frame.
    img.addEventListener('error', () => {
      frame.classList.add('no-preview');
      img.replaceWith(el('span', { class: 'no-preview-text' }, 'No preview in this browser'));
    }, { once: true });
    frame.append(img, el('div', { class: 'subject-box', 'aria-hidden': 'true', style: boxPercent(box, width, height) }));
    figure.append(frame);
  }
  figure.append(el('figcaption', { class: 'subject-caption' }, caption));
  return figure;
}

function themeBlock(theme, copy) {
  const ratios = new Map((theme.pairs ?? []).map((p) => [p.role, Number(p.ratio)]));
  const schemes = ['light', 'dark'].map((scheme) => {
    const colors = theme.schemes?.[scheme] ?? {};
    const items = THEME_ROLES.filter(([fill, text]) => colors[fill] && colors[text]).map(([fill, text, label]) => {
      const ratio = ratios.get(`${scheme}:${text}/${fill}`);
      return el('li', {
        class: 'theme-swatch', 'data-role': fill,
        style: { backgroundColor: colors[fill], color: colors[text] },
      },
      el('span', { class: 'role-name' }, label),
      el('span', { class: 'hex' }, colors[fill]),
      Number.isFinite(ratio) ? el('span', { class: 'ratio' }, `text ${ratio.toFixed(1)}:1`) : null);
    });
    headingIds += 1;
    const headingId = `theme-${scheme}-${headingIds}`;
    return el('div', { class: 'theme-scheme', 'data-scheme': scheme },
      el('h5', { id: headingId }, scheme === 'light' ? 'Light scheme' : 'Dark scheme'),
      el('ul', { class: 'theme-swatches', 'aria-labelledby': headingId }, items));
  });
  return el('div', { class: 'theme' },
    el('h4', {}, 'Theme'),
    el('p', { class: 'theme-seed' }, 'From the image color ',
      el('span', { class: 'seed-chip', 'aria-hidden': 'true', style: { backgroundColor: theme.source } }),
      el('span', { class: 'hex' }, theme.source),
      '; every text pair meets WCAG contrast (ratio shown).'),
    schemes,
    el('button', { type: 'button', class: 'link-button', 'data-copy': 'theme-css', onclick: () => copy(themeCss(theme), 'Theme CSS') }, 'Copy theme as CSS'));
}

/**
 * The analysis part of a card. `entry` is {status: 'loading' | 'done' | 'error', analysis,
 * error, url}; `retry()` asks again; `copy(text, what)` puts text on the clipboard.
 */
export function renderAnalysis(name, entry, { retry, copy }) {
  const root = el('section', { class: 'analysis', 'data-state': entry.status, 'aria-label': `Analysis of ${name}` },
    el('h3', { class: 'analysis-title' }, 'Image analysis'));
  if (entry.status === 'loading') {
    root.append(el('p', { class: 'analysis-status' }, 'Measuring quality, subject and theme…'));
  } else if (entry.status === 'error') {
    root.append(
      el('p', { class: 'analysis-error' }, `Analysis failed: ${entry.error}`),
      el('button', { type: 'button', class: 'button secondary', 'data-action': 'analyze-again', onclick: retry }, 'Analyse again'));
  } else {
    const { analysis } = entry;
    root.append(el('div', { class: 'analysis-grid' },
      qualityBlock(analysis.quality),
      subjectBlock(name, analysis, entry.url),
      analysis.theme ? themeBlock(analysis.theme, copy) : null));
  }
  return root;
}
