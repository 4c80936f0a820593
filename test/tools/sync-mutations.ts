/**
 * Mutation test of the write path's syncs: for each call of fdatasync, fsync or a directory
 * fsync in lib/log (found by reading the source), runs the power-loss torture
 * (test/store/power-loss.test.ts) with the syncs called from that line turned into no-ops by
 * the simulated storage, and reports whether the torture noticed and at which cut. A sync the
 * torture does not miss is either redundant or a gap in the torture: each needs a reason.
 *
 *   npx tsx test/tools/sync-mutations.ts [cuts per run, default 60] [runs, default 2] [seed, default 1]
 *
 * Prints one JSON line per sync site, then a summary line.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const [cuts = '60', runs = '2', seed = '1'] = process.argv.slice(2);
const SYNC_CALL = /\b(?:files\.)?(fdatasync|fsync|fsyncDir)\(/;

interface Site {
  readonly file: string;
  readonly line: number;
  readonly call: string;
  readonly code: string;
}

function sites(): Site[] {
  const found: Site[] = [];
  for (const dir of ['lib/log', 'lib/store']) {
    for (const name of fs.readdirSync(path.join(ROOT, dir)).filter((n) => n.endsWith('.ts') && n !== 'storage.ts')) {
      const lines = fs.readFileSync(path.join(ROOT, dir, name), 'utf8').split('\n');
      lines.forEach((text, i) => {
        const match = SYNC_CALL.exec(text);
        if (match === null || /^\s*(\*|\/\/|export (async )?function)/.test(text) || !text.includes('await')) return;
        found.push({ file: name, line: i + 1, call: match[1]!, code: text.trim() });
      });
    }
  }
  return found;
}

const results = [];
for (const site of sites()) {
  const location = `${site.file}:${site.line}`;
  const started = Date.now();
  const run = spawnSync('npx', ['mocha', 'test/store/power-loss.test.ts', '-g', 'keeps every'], {
    cwd: ROOT,
    env: { ...process.env, POWER_SKIP_SYNC: location, POWER_CUTS: cuts, POWER_RUNS: runs, POWER_SEED: seed },
    encoding: 'utf8',
    timeout: 900_000,
  });
  const output = `${run.stdout}${run.stderr}`;
  const cut = /failed at cut (\d+)/.exec(output)?.[1];
  const why = /(AssertionError|CorruptFileError|CorruptRecordError|Error): ([^\n]{0,160})/.exec(output);
  const result = { site: location, call: site.call, code: site.code, caught: run.status !== 0, at_cut: cut === undefined ? undefined : Number(cut), how: why === null ? undefined : `${why[1]}: ${why[2]}`, seconds: Math.round((Date.now() - started) / 1000) };
  results.push(result);
  console.log(JSON.stringify(result));
}
console.log(JSON.stringify({ summary: true, sites: results.length, caught: results.filter((r) => r.caught).length, missed: results.filter((r) => !r.caught).map((r) => r.site) }));
