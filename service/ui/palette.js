// One palette on screen: swatches sized by share (click copies the hex), readable text on
// each, the six roles, a quiet metrics line, and copy / download / share actions.

import { COPIES, DOWNLOADS, hexToRgb, paletteColors, slug } from './exports.js';

const ROLE_LABELS = {
  vibrant: 'Vibrant', muted: 'Muted', dark_vibrant: 'Dark vibrant', dark_muted: 'Dark muted',
  light_vibrant: 'Light vibrant', light_muted: 'Light muted',
};

const linear = (v) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
};

export function luminance([r, g, b]) {
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
}

export function contrastRatio(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** Black or white, whichever reads better on `rgb` (WCAG 2 contrast). */
export function readableText(rgb) {
  return contrastRatio(rgb, [0, 0, 0]) >= contrastRatio(rgb, [255, 255, 255]) ? '#000000' : '#ffffff';
}

/** Hue in degrees (HSL) and saturation-like chroma 0-1, for sorting. */
function hueOf([r, g, b]) {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const chroma = (max - min) / 255;
  if (chroma < 0.06) return { hue: 0, gray: true, lightness: (max + min) / 510 };
  let hue;
  if (max === r) hue = ((g - b) / (max - min)) % 6;
  else if (max === g) hue = (b - r) / (max - min) + 2;
  else hue = (r - g) / (max - min) + 4;
  return { hue: (hue * 60 + 360) % 360, gray: false, lightness: (max + min) / 510 };
}

/** The colors in display order: by share (the API's order) or by hue, grays last. */
export function sortedColors(palette, order) {
  const colors = paletteColors(palette);
  if (order !== 'hue') return colors;
  return colors
    .map((c) => ({ c, h: hueOf(c.rgb) }))
    .sort((x, y) => (x.h.gray - y.h.gray) || (x.h.gray ? y.h.lightness - x.h.lightness : x.h.hue - y.h.hue))
    .map(({ c }) => c);
}

/** Text color for a swatch: the palette's own (from its role swatches) or computed. */
function textFor(hex, rgb, palette) {
  for (const sw of Object.values(palette?.swatches ?? {})) {
    if (sw.hex?.toLowerCase() === hex && sw.body_text) return sw.body_text;
  }
  return readableText(rgb);
}

function rolesOf(hex, palette) {
  return Object.entries(palette?.swatches ?? {})
    .filter(([, sw]) => sw.hex?.toLowerCase() === hex && !sw.synthesized)
    .map(([role]) => ROLE_LABELS[role] ?? role);
}

const fmt = (v, digits = 1) => (v == null || !Number.isFinite(Number(v)) ? null : Number(v).toFixed(digits));

export function metricsLine(palette) {
  const m = palette?.metrics ?? {};
  const parts = [];
  if (fmt(m.delta_e_mean)) parts.push(`ΔE mean ${fmt(m.delta_e_mean)}`);
  if (fmt(m.delta_e_p95)) parts.push(`p95 ${fmt(m.delta_e_p95)}`);
  if (m.psnr != null && fmt(m.psnr)) parts.push(`PSNR ${fmt(m.psnr)} dB`);
  if (palette?.width && palette?.height) parts.push(`${palette.width}×${palette.height}`);
  if (palette?.transparent_fraction > 0) parts.push(`${(palette.transparent_fraction * 100).toFixed(1)}% transparent`);
  if (palette?.reason) parts.push(palette.reason);
  return parts.join(' · ');
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'style') Object.assign(node.style, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) {
    if (child != null && child !== false) node.append(child);
  }
  return node;
}
export { el };

/** The share URL of a palette: colors and shares in the fragment, nothing sent anywhere. */
export function shareUrl(palette, name) {
  const colors = paletteColors(palette)
    .map((c) => `${c.hex.slice(1)}.${Math.round(c.fraction * 10000)}`).join(',');
  const params = new URLSearchParams({ palette: colors });
  if (name) params.set('name', name);
  return `${location.origin}${location.pathname}#${params}`;
}

/** A palette from a share URL's fragment, or null. */
export function paletteFromHash(hash) {
  const params = new URLSearchParams(String(hash).replace(/^#/, ''));
  const raw = params.get('palette');
  if (!raw) return null;
  const colors = [];
  for (const item of raw.split(',')) {
    const m = /^([0-9a-f]{6})(?:\.(\d{1,5}))?$/i.exec(item.trim());
    if (!m) return null;
    const hex = `#${m[1].toLowerCase()}`;
    colors.push({ hex, rgb: hexToRgb(hex), fraction: m[2] ? Number(m[2]) / 10000 : 0 });
  }
  if (!colors.length || colors.length > 256) return null;
  if (colors.every((c) => c.fraction === 0)) colors.forEach((c) => { c.fraction = 1 / colors.length; });
  return { name: params.get('name') || 'Shared palette', palette: { colors } };
}

/**
 * Render one palette. `actions` provides copy(text, what), download(name, data, type) and
 * share(url); `order` is 'share' or 'hue'.
 */
export function renderPalette(name, palette, { order, actions, headingLevel = 3, hideName = false }) {
  const colors = sortedColors(palette, order);
  const strip = el('div', { class: 'swatches', role: 'list', 'aria-label': `Colors of ${name}` });
  for (const c of colors) {
    const text = textFor(c.hex, c.rgb, palette);
    const pct = `${(c.fraction * 100).toFixed(1)}%`;
    const roles = rolesOf(c.hex, palette);
    strip.append(el('div', { role: 'listitem', class: 'swatch-item', style: { flexGrow: String(Math.max(c.fraction, 0.0001)) } },
      el('button', {
        type: 'button', class: 'swatch', 'data-hex': c.hex,
        style: { backgroundColor: c.hex, color: text },
        title: `${c.hex} · ${pct}${roles.length ? ` · ${roles.join(', ')}` : ''} (click to copy)`,
        onclick: () => actions.copy(c.hex, c.hex),
      },
      el('span', { class: 'visually-hidden' }, 'Copy '),
      el('span', { class: 'hex' }, c.hex),
      el('span', { class: 'share' }, ` ${pct}`),
      roles.length ? el('span', { class: 'visually-hidden' }, `, ${roles.join(', ')}`) : null)));
  }

  const roleChips = Object.entries(palette?.swatches ?? {}).map(([role, sw]) => el('li', {
    class: `role${sw.synthesized ? ' synthesized' : ''}`,
    style: { backgroundColor: sw.hex, color: sw.body_text || readableText(hexToRgb(sw.hex)) },
    title: sw.synthesized ? 'No image color fits this role; made from the nearest one' : null,
  }, el('span', { class: 'role-name' }, ROLE_LABELS[role] ?? role), ' ', el('span', { class: 'hex' }, sw.hex.toLowerCase())));

  const stem = slug(name);
  const copyButtons = Object.entries(COPIES).map(([key, c]) => el('button', {
    type: 'button', class: 'link-button', 'data-copy': key,
    onclick: () => actions.copy(c.render(palette), `${c.label} for ${name}`),
  }, c.label));
  const downloadButtons = Object.entries(DOWNLOADS).map(([key, d]) => el('button', {
    type: 'button', class: 'link-button', 'data-download': key,
    'aria-label': `Download ${d.label} of ${name}`,
    onclick: () => actions.download(`${stem}.${d.ext}`, d.render(palette, stem), d.type),
  }, d.label));

  const heading = el(`h${headingLevel}`, { class: hideName ? 'palette-name visually-hidden' : 'palette-name' }, name);
  const metrics = metricsLine(palette);
  return el('section', { class: 'palette', 'data-name': name, 'data-colors': String(colors.length), 'aria-label': `Palette of ${name}` },
    heading,
    strip,
    roleChips.length ? el('ul', { class: 'roles', 'aria-label': 'Roles' }, roleChips) : null,
    metrics ? el('p', { class: 'metrics' }, metrics) : null,
    el('div', { class: 'palette-actions' },
      el('span', { class: 'action-group' }, el('span', { class: 'action-label' }, 'Copy as'), copyButtons),
      el('span', { class: 'action-group' }, el('span', { class: 'action-label' }, 'Download'), downloadButtons),
      el('button', { type: 'button', class: 'link-button', 'data-share': '', onclick: () => actions.share(shareUrl(palette, name), name) }, 'Share link')));
}
