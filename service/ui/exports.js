// Text and binary renderings of a palette, made in the browser from the palette JSON the API
// returns, so copying and downloading need no extra request and work offline.

/** The palette's colors as [{hex, rgb, fraction}], in the API's order (by share). */
export function paletteColors(palette) {
  return (palette?.colors ?? []).map((c) => ({
    hex: String(c.hex).toLowerCase(),
    rgb: Array.isArray(c.rgb) ? c.rgb : hexToRgb(c.hex),
    fraction: Number(c.fraction ?? 0),
  }));
}

export function hexToRgb(hex) {
  const v = String(hex).replace('#', '');
  return [0, 2, 4].map((i) => parseInt(v.slice(i, i + 2), 16));
}

/** A safe stem for file names and identifiers: "Sunset photo.JPG" -> "sunset-photo". */
export function slug(name) {
  const stem = String(name ?? '').replace(/\.[a-z0-9]{1,5}$/i, '');
  return stem.normalize('NFKD').replace(/[^\w-]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase()
    || 'palette';
}

const roleName = (role) => role.replace(/_/g, '-');
const percent = (f) => `${(f * 100).toFixed(2)}%`;

export function toCss(palette, prefix = 'palette') {
  const lines = [':root {'];
  paletteColors(palette).forEach((c, i) => {
    lines.push(`  --${prefix}-${i + 1}: ${c.hex}; /* ${percent(c.fraction)} */`);
  });
  for (const [role, sw] of Object.entries(palette?.swatches ?? {})) {
    lines.push(`  --${prefix}-${roleName(role)}: ${sw.hex};`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

export function toTailwind(palette, prefix = 'palette') {
  // A fragment for tailwind.config.js (theme.extend.colors), usable as `bg-palette-1`.
  const lines = [`// tailwind.config.js: theme.extend.colors`, `${prefix}: {`];
  paletteColors(palette).forEach((c, i) => lines.push(`  '${i + 1}': '${c.hex}',`));
  for (const [role, sw] of Object.entries(palette?.swatches ?? {})) {
    lines.push(`  '${roleName(role)}': '${sw.hex}',`);
  }
  lines.push('},');
  return lines.join('\n') + '\n';
}

export function toScss(palette, prefix = 'palette') {
  const colors = paletteColors(palette);
  const lines = colors.map((c, i) => `$${prefix}-${i + 1}: ${c.hex};`);
  for (const [role, sw] of Object.entries(palette?.swatches ?? {})) {
    lines.push(`$${prefix}-${roleName(role)}: ${sw.hex};`);
  }
  lines.push(`$${prefix}: (${colors.map((c, i) => `${i + 1}: ${c.hex}`).join(', ')});`);
  return lines.join('\n') + '\n';
}

/** Short JSON for the clipboard: the colors and the role colors. */
export function toCompactJson(palette) {
  const roles = Object.fromEntries(
    Object.entries(palette?.swatches ?? {}).map(([role, sw]) => [role, sw.hex]));
  const colors = paletteColors(palette).map((c) => ({ hex: c.hex, share: +c.fraction.toFixed(4) }));
  return JSON.stringify({ colors, roles }, null, 2) + '\n';
}

export function toJson(palette) {
  return JSON.stringify(palette, null, 2) + '\n';
}

export function toGpl(palette, name = 'PaletteEngine') {
  const colors = paletteColors(palette);
  const title = String(name).split(/\s+/).join(' ').trim() || 'PaletteEngine';
  const lines = ['GIMP Palette', `Name: ${title}`, `Columns: ${Math.max(1, Math.min(colors.length, 16))}`, '#'];
  for (const c of colors) {
    const [r, g, b] = c.rgb.map((v) => String(v).padStart(3, ' '));
    lines.push(`${r} ${g} ${b}\t${c.hex} ${percent(c.fraction)}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Adobe Swatch Exchange: "ASEF", version 1.0, a block count, then one block per color
 * (type 1, byte length, UTF-16BE name with its NUL, "RGB ", three float32, color type 0).
 * All big-endian.
 */
export function toAse(palette) {
  const blocks = paletteColors(palette).map((c) => {
    const units = [...c.hex].map((ch) => ch.charCodeAt(0)).concat(0);
    const bodyLength = 2 + units.length * 2 + 4 + 12 + 2;
    const block = new DataView(new ArrayBuffer(6 + bodyLength));
    let at = 0;
    block.setUint16(at, 0x0001); at += 2;
    block.setUint32(at, bodyLength); at += 4;
    block.setUint16(at, units.length); at += 2;
    for (const u of units) { block.setUint16(at, u); at += 2; }
    for (const ch of 'RGB ') { block.setUint8(at, ch.charCodeAt(0)); at += 1; }
    for (const v of c.rgb) { block.setFloat32(at, v / 255); at += 4; }
    block.setUint16(at, 0);
    return new Uint8Array(block.buffer);
  });
  const header = new DataView(new ArrayBuffer(12));
  [0x41, 0x53, 0x45, 0x46].forEach((b, i) => header.setUint8(i, b));
  header.setUint16(4, 1);
  header.setUint16(6, 0);
  header.setUint32(8, blocks.length);
  return concatBytes([new Uint8Array(header.buffer), ...blocks]);
}

const escapeXml = (s) => String(s).replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** An SVG strip with one rectangle per color, its width proportional to the color's share. */
export function toSvg(palette, name = 'Palette', width = 800, height = 120) {
  const colors = paletteColors(palette);
  const total = colors.reduce((s, c) => s + c.fraction, 0);
  const shares = colors.map((c) => (total > 0 ? c.fraction / total : 1 / colors.length));
  const parts = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" shape-rendering="crispEdges">`,
    `<title>${escapeXml(name)}</title>`,
  ];
  let cumulative = 0;
  let left = 0;
  colors.forEach((c, i) => {
    cumulative += shares[i];
    const right = Math.round(cumulative * width * 1000) / 1000;
    parts.push(`<rect x="${left}" y="0" width="${Math.max(right - left, 0)}" height="${height}" fill="${c.hex}"><title>${c.hex} ${percent(c.fraction)}</title></rect>`);
    left = right;
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export const DOWNLOADS = {
  json: { label: 'JSON', ext: 'json', type: 'application/json', render: (p) => toJson(p) },
  gpl: { label: 'GPL', ext: 'gpl', type: 'text/plain', render: (p, n) => toGpl(p, n) },
  ase: { label: 'ASE', ext: 'ase', type: 'application/octet-stream', render: (p) => toAse(p) },
  svg: { label: 'SVG', ext: 'svg', type: 'image/svg+xml', render: (p, n) => toSvg(p, n) },
};

export const COPIES = {
  css: { label: 'CSS variables', render: (p) => toCss(p) },
  tailwind: { label: 'Tailwind', render: (p) => toTailwind(p) },
  scss: { label: 'SCSS', render: (p) => toScss(p) },
  json: { label: 'JSON', render: (p) => toCompactJson(p) },
};

function concatBytes(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

const encoder = new TextEncoder();
const asBytes = (data) => (typeof data === 'string' ? encoder.encode(data) : data);

let crcTable = null;
function crc32(bytes) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = crcTable[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * A ZIP archive (stored, no compression: palettes are tiny) of [{name, data}] entries, where
 * data is a string or Uint8Array. Names are UTF-8 (general purpose flag bit 11).
 */
export function zipFiles(entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const entry of entries) {
    const name = encoder.encode(entry.name);
    const data = asBytes(entry.data);
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true);
    local.setUint16(8, 0, true);
    local.setUint16(10, 0, true);
    local.setUint16(12, 0x21, true); // 1980-01-01: stable bytes for the same palettes
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, 0, true);
    locals.push(new Uint8Array(local.buffer), name, data);

    const central = new DataView(new ArrayBuffer(46));
    central.setUint32(0, 0x02014b50, true);
    central.setUint16(4, 20, true);
    central.setUint16(6, 20, true);
    central.setUint16(8, 0x0800, true);
    central.setUint16(10, 0, true);
    central.setUint16(12, 0, true);
    central.setUint16(14, 0x21, true);
    central.setUint32(16, crc, true);
    central.setUint32(20, data.length, true);
    central.setUint32(24, data.length, true);
    central.setUint16(28, name.length, true);
    central.setUint32(42, offset, true);
    centrals.push(new Uint8Array(central.buffer), name);
    offset += 30 + name.length + data.length;
  }
  const centralSize = centrals.reduce((n, c) => n + c.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  return concatBytes([...locals, ...centrals, new Uint8Array(end.buffer)]);
}

/** Every image's palette of a job in every download format, plus the results as one JSON. */
export function bulkArchive(results) {
  const entries = [];
  const used = new Set();
  for (const item of results) {
    if (!item.palette) continue;
    let stem = slug(item.name.split('/').pop());
    for (let n = 2; used.has(stem); n++) stem = `${slug(item.name.split('/').pop())}-${n}`;
    used.add(stem);
    for (const fmt of Object.values(DOWNLOADS)) {
      entries.push({ name: `${stem}/${stem}.${fmt.ext}`, data: fmt.render(item.palette, stem) });
    }
  }
  entries.push({ name: 'results.json', data: JSON.stringify(results, null, 2) + '\n' });
  return zipFiles(entries);
}
