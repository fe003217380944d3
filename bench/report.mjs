// Turns a benchmark run (the JSON the orchestrator collects) into a markdown report with ratios to
// the best peer, and an SVG bar chart written by hand (no dependencies).
//
// run = { meta, engines: [{ engine, name, ours, version, variants, status, reason? }],
//         results: [result], skips: [{ engine, workload, variant, reason }],
//         errors: [{ engine, workload, variant, message, verification }] }

import { DESCRIPTIONS, WORKLOADS } from './workloads.mjs';

// ---------------------------------------------------------------- formatting

export function fmtOps(x) {
  if (x == null || !Number.isFinite(x)) return '—';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(0)}k`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(x >= 100 ? 0 : 1);
}

export function fmtUs(us) {
  if (us == null || !Number.isFinite(us)) return '—';
  if (us >= 1e4) return `${(us / 1e3).toFixed(0)} ms`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(1)} ms`;
  if (us >= 100) return `${us.toFixed(0)} µs`;
  if (us >= 10) return `${us.toFixed(1)} µs`;
  return `${us.toFixed(2)} µs`;
}

const fmtMiB = (b) => (b == null ? '—' : `${(b / 1048576).toFixed(b >= 100 * 1048576 ? 0 : 1)}`);
const fmtNum = (x, d = 1) => (x == null || !Number.isFinite(x) ? '—' : x.toFixed(d));
const fmtInt = (x) => (x == null ? '—' : Math.round(x).toLocaleString('en-US'));
const fmtRatio = (r) => (r == null || !Number.isFinite(r) ? '' : `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}×`);

// ---------------------------------------------------------------- model

/** Row label for an engine and variant: "lightning-db", "lightning-db (getSync)". */
export function rowLabel(engines, engine, variant) {
  const e = engines.find((x) => x.engine === engine);
  const name = e ? e.name : engine;
  return variant && variant !== 'default' ? `${name} (${variant})` : name;
}

/** Rows (engine × variant) in display order: ours first, then peers as configured. */
export function rows(run) {
  const out = [];
  for (const e of run.engines) {
    if (e.status !== 'ok') continue;
    for (const v of e.variants ?? ['default']) {
      const has = run.results.some((r) => r.engine === e.engine && r.variant === v) ||
        run.skips.some((s) => s.engine === e.engine && s.variant === v) ||
        run.errors.some((s) => s.engine === e.engine && s.variant === v);
      if (has) out.push({ engine: e.engine, variant: v, label: rowLabel(run.engines, e.engine, v), ours: !!e.ours });
    }
  }
  return out;
}

const isOurs = (run, engine) => !!run.engines.find((e) => e.engine === engine)?.ours;

/** The best peer (not ours) result of a workload by ops/s, or null. */
export function bestPeer(run, workload) {
  let best = null;
  for (const r of run.results) {
    if (r.workload !== workload || isOurs(run, r.engine)) continue;
    if (best === null || r.opsPerSec > best.opsPerSec) best = r;
  }
  return best;
}

function find(run, row, workload) {
  const match = (x) => x.engine === row.engine && x.variant === row.variant && x.workload === workload;
  const result = run.results.find(match);
  if (result) return { result };
  const error = run.errors.find(match);
  if (error) return { error };
  const skip = run.skips.find(match);
  if (skip) return { skip };
  return {};
}

export function workloadsIn(run) {
  return WORKLOADS.filter((w) =>
    run.results.some((r) => r.workload === w) || run.skips.some((r) => r.workload === w) || run.errors.some((r) => r.workload === w),
  );
}

/** ours / best peer per workload, for the summary and the report to the user. */
export function standing(run) {
  const out = [];
  for (const w of workloadsIn(run)) {
    const best = bestPeer(run, w);
    for (const row of rows(run).filter((r) => r.ours)) {
      const { result } = find(run, row, w);
      if (!result || !best) continue;
      out.push({ workload: w, label: row.label, opsPerSec: result.opsPerSec, best: rowLabel(run.engines, best.engine, best.variant), bestOpsPerSec: best.opsPerSec, ratio: result.opsPerSec / best.opsPerSec });
    }
  }
  return out;
}

// ---------------------------------------------------------------- markdown

function cellFor(run, row, w, best) {
  const { result, error, skip } = find(run, row, w);
  if (error) return error.verification ? '**verify FAILED**' : '**FAILED**';
  if (skip) return skip.reason === 'not supported' ? 'n/s' : `skipped`;
  if (!result) return '—';
  const ratio = best ? result.opsPerSec / best.opsPerSec : null;
  const isBest = best && result.engine === best.engine && result.variant === best.variant;
  const r = fmtRatio(ratio);
  const capped = result.capped ? '†' : '';
  return `${fmtOps(result.opsPerSec)}${capped}${r ? ` (${isBest ? `**${r}**` : r})` : ''}`;
}

export function summaryTable(run) {
  const rs = rows(run);
  const ws = workloadsIn(run);
  const lines = [];
  lines.push(`| workload | ${rs.map((r) => r.label).join(' | ')} | best peer |`);
  lines.push(`|---|${rs.map(() => '--:').join('|')}|---|`);
  for (const w of ws) {
    const best = bestPeer(run, w);
    const cells = rs.map((row) => cellFor(run, row, w, best));
    lines.push(`| ${w} | ${cells.join(' | ')} | ${best ? rowLabel(run.engines, best.engine, best.variant) : '—'} |`);
  }
  return lines.join('\n');
}

function detailTable(run, w) {
  const rs = rows(run);
  const best = bestPeer(run, w);
  const single = run.results.some((r) => r.workload === w && r.latency);
  const lines = [];
  const head = ['engine', 'ops', 'ops/s', '× best peer', 'MB/s'];
  if (single) head.push('p50', 'p99', 'p99.9');
  head.push('CPU %', 'peak RSS MiB');
  const fills = run.results.some((r) => r.workload === w && r.diskBytes != null);
  if (fills) head.push('disk MiB', 'write amp (stats)', 'io write amp');
  head.push('notes');
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map((h, i) => (i === 0 || h === 'notes' ? '---' : '--:')).join('|')}|`);
  for (const row of rs) {
    const { result: r, error, skip } = find(run, row, w);
    if (error) {
      lines.push(`| ${row.label} | ${error.verification ? 'verify FAILED' : 'FAILED'}: ${error.message.replace(/\|/g, '/').slice(0, 160)} |`);
      continue;
    }
    if (skip) {
      lines.push(`| ${row.label} | ${skip.reason} |`);
      continue;
    }
    if (!r) continue;
    const notes = [];
    if (r.capped) notes.push('† capped by the time budget');
    if (r.syncApi) notes.push('sync API');
    if (r.openMs != null) notes.push(`open ${r.openMs.toFixed(0)} ms`);
    if (r.closeMs != null) notes.push(`close ${r.closeMs.toFixed(0)} ms`);
    if (r.writers) notes.push(`${r.writers} writers`);
    if (r.clients) notes.push(`${r.clients} clients`);
    if (r.reads != null) notes.push(`${fmtInt(r.reads)} reads / ${fmtInt(r.updates)} updates`);
    if (r.applied != null) notes.push(`${fmtInt(r.applied)} applied`);
    if (r.ours?.levels) notes.push(r.ours.levels);
    if (r.ours?.compactions && (w.startsWith('fill') || w === 'putsingle')) {
      notes.push(`${r.ours.compactions} compactions${r.ours.trivialMoves != null ? `, ${r.ours.trivialMoves} trivial moves` : ''}`);
    }
    if (r.ours?.groups && r.ours.batches && w.startsWith('fillsync')) notes.push(`group commit ${(r.ours.batches / r.ours.groups).toFixed(1)} writes/group`);
    if (r.ours?.stalls) notes.push(`${r.ours.stalls} stalls${r.ours.stallMs != null ? ` (${r.ours.stallMs.toFixed(0)} ms)` : ''}`);
    const cells = [
      row.label,
      fmtInt(r.ops),
      fmtOps(r.opsPerSec),
      best ? fmtRatio(r.opsPerSec / best.opsPerSec) : '',
      fmtNum(r.mbPerSec),
    ];
    if (single) cells.push(fmtUs(r.latency?.p50), fmtUs(r.latency?.p99), fmtUs(r.latency?.p999));
    cells.push(fmtNum(r.cpuPct, 0), fmtMiB(r.peakRssBytes));
    if (fills) cells.push(fmtMiB(r.diskBytes), r.writeAmp != null ? fmtNum(r.writeAmp, 2) : '—', r.ioWriteAmp != null ? fmtNum(r.ioWriteAmp, 2) : '—');
    cells.push(notes.join('; '));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

export function markdown(run) {
  const m = run.meta;
  const out = [];
  out.push(`# Lightning DB benchmark — ${m.startedAt}`);
  out.push('');
  out.push(
    `N = ${fmtInt(m.n)}${m.large ? ' (--large)' : ''}, seed ${m.seed}, cache ${fmtMiB(m.cacheBytes)} MiB per engine, ` +
      `time budget ${m.maxSeconds} s per workload. Node ${m.node}, ${m.platform}, ${m.cpus}× ${m.cpuModel}, ${fmtMiB(m.memBytes)} MiB RAM. ` +
      `Our commit ${m.git ?? 'unknown'}. Total ${fmtNum(m.totalSeconds, 0)} s.`,
  );
  out.push('');
  out.push('Engines: ' + run.engines.map((e) => `${e.name}${e.version ? ` ${e.version}` : ''}${e.status !== 'ok' ? ` (skipped: ${e.reason})` : ''}`).join(', ') + '.');
  out.push('');
  out.push(
    'Cells: ops/s (ratio to the best peer in that workload; the best peer shows **1.00×**). ' +
      '`n/s` = not supported, † = stopped early by the time budget (rate over the ops done). ' +
      'This machine is noisy (±40% between runs): compare engines within one run, not across runs.',
  );
  out.push('');
  out.push('## Throughput');
  out.push('');
  out.push(summaryTable(run));
  out.push('');
  const st = standing(run);
  if (st.length > 0) {
    out.push('## Our standing (ratio to the best peer)');
    out.push('');
    for (const s of st) {
      const flag = s.ratio < 0.25 ? ' — far behind' : s.ratio < 0.5 ? ' — behind' : s.ratio >= 1 ? ' — ahead' : '';
      out.push(`- ${s.workload}, ${s.label}: ${fmtOps(s.opsPerSec)} ops/s vs ${s.best} ${fmtOps(s.bestOpsPerSec)} = ${fmtRatio(s.ratio)}${flag}`);
    }
    out.push('');
  }
  out.push('## Details');
  out.push('');
  out.push('Latencies are per operation (per scan for seekrandom, per transaction for txn). CPU % is process CPU time over wall time (>100% = background threads). Peak RSS is sampled during the workload. Disk = allocated bytes after the fill and close. Write amp (stats) is ours only: (WAL + flush + compaction bytes) / user bytes from `db.stats()`. io write amp = `write_bytes` from /proc/self/io over user bytes, for every engine (page-granular: small appends to one page count once).');
  out.push('');
  for (const w of workloadsIn(run)) {
    out.push(`### ${w}`);
    out.push('');
    out.push(`${DESCRIPTIONS[w]}.`);
    out.push('');
    out.push(detailTable(run, w));
    out.push('');
  }
  if (run.errors.length > 0) {
    out.push('## Errors');
    out.push('');
    for (const e of run.errors) out.push(`- ${rowLabel(run.engines, e.engine, e.variant)} ${e.workload}: ${e.message}`);
    out.push('');
  }
  return out.join('\n');
}

// ---------------------------------------------------------------- SVG

const PALETTE = ['#d62728', '#ff9896', '#1f77b4', '#aec7e8', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Grouped horizontal bars: one group per workload, bar length = ops/s relative to the fastest. */
export function svg(run) {
  const rs = rows(run);
  const ws = workloadsIn(run);
  const color = new Map(rs.map((r, i) => [r.label, PALETTE[i % PALETTE.length]]));
  const W = 960;
  const labelW = 190;
  const barMax = 520;
  const barH = 13;
  const gap = 3;
  const groupGap = 16;
  const top = 84;
  const parts = [];
  let y = top;
  for (const w of ws) {
    const best = bestPeer(run, w);
    const present = rs.filter((row) => {
      const f = find(run, row, w);
      return f.result || f.error || f.skip;
    });
    const max = Math.max(1e-9, ...present.map((row) => find(run, row, w).result?.opsPerSec ?? 0));
    parts.push(`<text x="10" y="${y + 11}" class="w">${esc(w)}</text>`);
    y += 16;
    for (const row of present) {
      const { result, error, skip } = find(run, row, w);
      parts.push(`<text x="${labelW - 6}" y="${y + barH - 3}" class="l" text-anchor="end">${esc(row.label)}</text>`);
      if (result) {
        const len = Math.max(1, (result.opsPerSec / max) * barMax);
        const ratio = best ? ` · ${fmtRatio(result.opsPerSec / best.opsPerSec)}` : '';
        parts.push(`<rect x="${labelW}" y="${y}" width="${len.toFixed(1)}" height="${barH}" fill="${color.get(row.label)}"${row.ours ? ' stroke="#000" stroke-width="1"' : ''}><title>${esc(`${row.label} ${w}: ${fmtOps(result.opsPerSec)} ops/s`)}</title></rect>`);
        parts.push(`<text x="${(labelW + len + 5).toFixed(1)}" y="${y + barH - 3}" class="v">${esc(`${fmtOps(result.opsPerSec)} ops/s${result.capped ? '†' : ''}${ratio}`)}</text>`);
      } else {
        const text = error ? (error.verification ? 'verification FAILED' : 'FAILED') : skip.reason;
        parts.push(`<text x="${labelW + 4}" y="${y + barH - 3}" class="v n">${esc(text)}</text>`);
      }
      y += barH + gap;
    }
    y += groupGap;
  }
  const legend = rs
    .map((r, i) => {
      const x = 10 + (i % 5) * 185;
      const ly = 44 + Math.floor(i / 5) * 16;
      return `<rect x="${x}" y="${ly}" width="11" height="11" fill="${color.get(r.label)}"/><text x="${x + 15}" y="${ly + 10}" class="l">${esc(r.label)}</text>`;
    })
    .join('');
  const H = y + 10;
  const m = run.meta;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.t{font-size:14px;font-weight:bold}.w{font-size:12px;font-weight:bold}.l{font-size:11px}.v{font-size:10px;fill:#333}.n{fill:#a00}</style>',
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="10" y="20" class="t">${esc(`Lightning DB benchmark — N = ${fmtInt(m.n)} — ${m.startedAt}`)}</text>`,
    `<text x="10" y="35" class="v">${esc('ops/s per workload; × = ratio to the best peer (1.00× = best peer); bars relative to the fastest engine in the workload; outlined = ours')}</text>`,
    legend,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
