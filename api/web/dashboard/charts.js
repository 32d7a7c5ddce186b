// Hand-written SVG charts: grouped bars per day, lines per day (with gaps for days without data),
// horizontal bars, a ring for a rate, and a sparkline. Each takes plain numbers and returns an
// <svg> that scales to its container (viewBox) and says what it shows (role="img", aria-label).

import { s } from './dom.js';

const W = 640;
const LEFT = 44;
const RIGHT = 12;
const TOP = 12;
const BOTTOM = 26;

/** A round upper bound for an axis: 1, 2, 2.5, 5 or 10 times a power of ten. */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= value) return m * power;
  return 10 * power;
}

function frame(label, height, testid) {
  return s('svg', { viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-label': label, class: 'chart', testid, preserveAspectRatio: 'xMidYMid meet' },
    s('title', {}, label));
}

/** Horizontal grid lines and y labels at 0, half and the top. */
function yAxis(svg, max, height, format) {
  const plot = height - TOP - BOTTOM;
  for (const f of [0, 0.5, 1]) {
    const y = TOP + plot * (1 - f);
    svg.append(s('line', { x1: LEFT, x2: W - RIGHT, y1: y, y2: y, class: f === 0 ? 'axis' : 'grid' }),
      s('text', { x: LEFT - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, format(max * f)));
  }
}

/** Day labels under the plot, at most about eight of them, always the last (today). */
function xLabels(svg, labels, x, height) {
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, i) => {
    if ((labels.length - 1 - i) % every !== 0) return;
    svg.append(s('text', { x: x(i), y: height - 8, class: 'tick', 'text-anchor': 'middle' }, label));
  });
}

const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/**
 * Grouped bars: `groups` = [{label, values: [n, …]}], `series` = [{name, class}], one bar per series.
 */
export function barChart({ groups, series, label, height = 220, testid }) {
  const svg = frame(label, height, testid);
  const max = niceMax(Math.max(0, ...groups.flatMap((g) => g.values)));
  yAxis(svg, max, height, count);
  const plot = height - TOP - BOTTOM;
  const slot = (W - LEFT - RIGHT) / Math.max(1, groups.length);
  const bar = Math.max(1, (slot * 0.8) / series.length);
  groups.forEach((group, i) => {
    group.values.forEach((value, j) => {
      const h = (value / max) * plot;
      const x = LEFT + i * slot + slot * 0.1 + j * bar;
      svg.append(s('rect', { x, y: TOP + plot - h, width: Math.max(1, bar - 1), height: Math.max(0, h), class: `bar ${series[j].class}`, 'data-value': value },
        s('title', {}, `${group.label}: ${value} ${series[j].name}`)));
    });
  });
  xLabels(svg, groups.map((g) => g.label), (i) => LEFT + i * slot + slot / 2, height);
  return svg;
}

/**
 * Lines over days: `points` = [{label, values: [n|null, …]}]; a null leaves a gap.
 */
export function lineChart({ points, series, label, format = count, height = 220, testid }) {
  const svg = frame(label, height, testid);
  const max = niceMax(Math.max(0, ...points.flatMap((p) => p.values.filter((v) => v !== null))));
  yAxis(svg, max, height, format);
  const plot = height - TOP - BOTTOM;
  // Each day in the middle of its slot, as in the bar chart: the first and last labels fit.
  const slot = (W - LEFT - RIGHT) / Math.max(1, points.length);
  const x = (i) => LEFT + (i + 0.5) * slot;
  const y = (v) => TOP + plot * (1 - v / max);
  series.forEach((line, j) => {
    let run = [];
    const flush = () => {
      if (run.length > 1) svg.append(s('polyline', { points: run.join(' '), class: `line ${line.class}` }));
      run = [];
    };
    points.forEach((p, i) => {
      const v = p.values[j];
      if (v === null || v === undefined) return flush();
      run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      svg.append(s('circle', { cx: x(i), cy: y(v), r: 3, class: `dot ${line.class}` }, s('title', {}, `${p.label}: ${line.name} ${format(v)}`)));
    });
    flush();
  });
  xLabels(svg, points.map((p) => p.label), x, height);
  return svg;
}

/** Horizontal bars: `rows` = [{label, value, note}], scaled to the largest value. */
export function hbarChart({ rows, label, testid, format = count }) {
  const rowHeight = 26;
  const height = TOP + rows.length * rowHeight + 4;
  const svg = frame(label, height, testid);
  const labelWidth = 150;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const room = W - labelWidth - 90;
  rows.forEach((row, i) => {
    const y = TOP + i * rowHeight;
    const width = (row.value / max) * room;
    svg.append(
      s('text', { x: labelWidth - 8, y: y + 15, class: 'label', 'text-anchor': 'end' }, row.label.length > 22 ? `${row.label.slice(0, 21)}…` : row.label),
      s('rect', { x: labelWidth, y: y + 2, width: Math.max(width, row.value > 0 ? 2 : 0), height: rowHeight - 8, class: 'bar hbar', 'data-value': row.value },
        s('title', {}, `${row.label}: ${format(row.value)}${row.note ? ` (${row.note})` : ''}`)),
      s('text', { x: labelWidth + width + 6, y: y + 15, class: 'value' }, `${format(row.value)}${row.note ? `  ${row.note}` : ''}`));
  });
  return svg;
}

/** A ring showing a rate between 0 and 1, the percentage in its middle. */
export function ringChart({ rate, label, testid }) {
  const size = 140;
  const r = 52;
  const circumference = 2 * Math.PI * r;
  const value = Math.min(1, Math.max(0, rate ?? 0));
  const svg = s('svg', { viewBox: `0 0 ${size} ${size}`, role: 'img', 'aria-label': label, class: 'chart ring', testid },
    s('title', {}, label),
    s('circle', { cx: size / 2, cy: size / 2, r, class: 'ring-track' }),
    value > 0 && s('circle', {
      cx: size / 2, cy: size / 2, r, class: 'ring-value',
      'stroke-dasharray': `${(value * circumference).toFixed(2)} ${circumference.toFixed(2)}`,
      transform: `rotate(-90 ${size / 2} ${size / 2})`,
    }),
    s('text', { x: size / 2, y: size / 2 + 8, 'text-anchor': 'middle', class: 'ring-text' }, rate === null || rate === undefined ? '—' : `${Math.round(value * 100)}%`));
  return svg;
}

/** A small line of values between 0 and 1 (consistency scores). */
export function sparkline(values, { label }) {
  const w = 220;
  const h = 44;
  const step = values.length > 1 ? (w - 8) / (values.length - 1) : 0;
  const pts = values.map((v, i) => `${(4 + i * step).toFixed(1)},${(4 + (1 - v) * (h - 8)).toFixed(1)}`);
  return s('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': label, class: 'chart spark' },
    s('title', {}, label),
    s('line', { x1: 4, x2: w - 4, y1: 4 + 0.25 * (h - 8), y2: 4 + 0.25 * (h - 8), class: 'grid' }),
    values.length > 1 ? s('polyline', { points: pts.join(' '), class: 'line p50' }) : null,
    values.map((v, i) => s('circle', { cx: 4 + i * step, cy: 4 + (1 - v) * (h - 8), r: 2.5, class: 'dot p50' })));
}
