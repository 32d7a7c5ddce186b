// Stats: the counts of GET /v1/creators/{slug}/stats drawn as small SVG charts — messages per day,
// reply latency, each program's funnel, the nudge response rate and the active users.

import { api, creatorPath } from './api.js';
import { barChart, hbarChart, lineChart, ringChart } from './charts.js';
import { h, fill, millis } from './dom.js';

const PERIODS = [7, 14, 30, 90];

export function statsView(ctx) {
  let days = Number(sessionStorage.getItem('twin.stats.days')) || 14;
  const body = h('div', { class: 'stats', testid: 'stats' }, h('p', { class: 'muted' }, 'Loading…'));
  const picker = h('select', {
    testid: 'stats-days', 'aria-label': 'Period',
    onchange: (e) => {
      days = Number(e.target.value);
      sessionStorage.setItem('twin.stats.days', String(days));
      load();
    },
  }, PERIODS.map((d) => h('option', { value: d, selected: d === days }, `Last ${d} days`)));
  let disposed = false;

  async function load() {
    try {
      const stats = await api('GET', creatorPath(ctx.slug, `/stats?days=${days}`));
      if (!disposed) fill(body, render(stats));
    } catch (error) {
      ctx.toast(error);
      if (!disposed) fill(body, h('p', { class: 'muted', testid: 'stats-error' }, `The stats could not be read: ${error.detail || error.message}`));
    }
  }
  load();

  const el = h('section', { class: 'screen' },
    h('div', { class: 'screen-head' }, h('h2', {}, 'Stats'), picker,
      h('p', { class: 'muted' }, 'Real users only: preview conversations from “Test my twin” are not counted. Days in UTC.')),
    body);
  return { el, dispose: () => { disposed = true; } };
}

const short = (date) => date.slice(5); // 2026-12-05 → 12-05

function card(title, testid, ...content) {
  return h('section', { class: 'card chart-card', testid }, h('h3', {}, title), ...content);
}

function legend(items) {
  return h('div', { class: 'legend' }, items.map(([name, cls]) => h('span', {}, h('i', { class: `swatch ${cls}` }), name)));
}

function render(stats) {
  const perDay = stats.messages_per_day ?? [];
  const totals = perDay.reduce((t, d) => [t[0] + d.inbound, t[1] + d.outbound], [0, 0]);
  const latency = stats.reply_latency_ms ?? {};
  const active = stats.active_users ?? {};
  const nudges = stats.nudges ?? {};
  const funnels = stats.funnel ?? [];
  return [
    h('div', { class: 'kpis' },
      kpi('Active, last 24 h', active.day, 'kpi-day'), kpi('Active, last 7 days', active.week, 'kpi-week'),
      kpi(`Active, last ${stats.days} days`, active.period, 'kpi-period'),
      kpi('Messages in / out', `${totals[0]} / ${totals[1]}`, 'kpi-messages'),
      kpi('Reply latency p50', millis(latency.p50), 'kpi-p50')),
    h('div', { class: 'grid2' },
      card('Messages per day', 'chart-messages',
        legend([['from users', 'inbound'], ['to users', 'outbound']]),
        barChart({
          testid: 'svg-messages', label: `Messages per day from ${stats.from} to ${stats.to}`,
          groups: perDay.map((d) => ({ label: short(d.date), values: [d.inbound, d.outbound] })),
          series: [{ name: 'from users', class: 'inbound' }, { name: 'to users', class: 'outbound' }],
        })),
      card('Reply latency', 'chart-latency',
        legend([['median (p50)', 'p50'], ['p95', 'p95']]),
        lineChart({
          testid: 'svg-latency', label: 'Reply latency per day, median and 95th percentile', format: millis,
          points: (latency.per_day ?? []).map((d) => ({ label: short(d.date), values: d.samples ? [d.p50, d.p95] : [null, null] })),
          series: [{ name: 'p50', class: 'p50' }, { name: 'p95', class: 'p95' }],
        }),
        h('p', { class: 'muted' }, `${latency.samples ?? 0} replies · p50 ${millis(latency.p50)} · p95 ${millis(latency.p95)}`)),
      card('Program funnel', 'chart-funnel',
        funnels.length ? funnels.map((f) => {
          const first = f.steps[0]?.users || 0;
          if (!f.steps.some((st) => st.users > 0)) {
            return h('div', { class: 'funnel' }, h('h4', {}, f.program), h('p', { class: 'muted' }, 'Nobody entered it in this period.'));
          }
          return h('div', { class: 'funnel' }, h('h4', {}, f.program),
            hbarChart({
              testid: 'svg-funnel', label: `How many users reached each step of ${f.program}`,
              rows: f.steps.map((st) => ({ label: st.step, value: st.users, note: first ? `${Math.round((st.users / first) * 100)}%` : '' })),
            }));
        }) : h('p', { class: 'muted' }, 'No user has entered a program step in this period.')),
      card('Nudges', 'chart-nudges',
        h('div', { class: 'ring-row' },
          ringChart({ testid: 'svg-nudges', rate: nudges.fired ? nudges.response_rate : null, label: 'Share of fired nudges the user answered' }),
          nudges.fired
            ? h('div', {}, h('p', { class: 'big' }, `${nudges.responded ?? 0} of ${nudges.fired}`),
              h('p', { class: 'muted' }, 'nudges that fired were answered by the user within a day'))
            : h('p', { class: 'muted' }, 'No nudge fired in this period.'))),
      card('Active users', 'chart-active',
        hbarChart({
          testid: 'svg-active', label: 'Users who wrote in the last 24 hours, the last 7 days and the period',
          rows: [{ label: 'last 24 h', value: active.day ?? 0 }, { label: 'last 7 days', value: active.week ?? 0 }, { label: `last ${stats.days} days`, value: active.period ?? 0 }],
        }))),
  ];
}

function kpi(label, value, testid) {
  return h('div', { class: 'kpi card', testid }, h('span', { class: 'muted' }, label), h('strong', {}, value ?? '—'));
}
