/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): the functions with the most self time,
 * the most inclusive time, and self time by source file, as percentages of the profile and of
 * its non-idle part. Profile compiled JavaScript (tsc) for exact line numbers: under tsx every
 * function shows line 1.
 *
 *   npx tsc -p tsconfig.json --outDir .bench-prof --sourceMap false --declaration false
 *   BENCH_ONLY=W3 node --cpu-prof --cpu-prof-dir=/tmp/prof .bench-prof/bench/run.js
 *   npx tsx bench/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [top=25] [filter=substring] [lineFunctions=8]
 *   rm -rf .bench-prof /tmp/prof
 *
 * `filter` keeps only the samples whose stack contains a function or file matching it (e.g.
 * `readAll`), to look at one phase of a run; percentages are then of the kept samples.
 */
import fs from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
  hitCount?: number;
  /** Samples by source line (1-based) within the function. */
  positionTicks?: { line: number; ticks: number }[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function label(frame: CallFrame): string {
  const file = frame.url === '' ? '' : frame.url.replace(/^file:\/\//, '').replace(/^.*\/(lib|bench|node_modules)\//, '$1/');
  return `${frame.functionName || '(anonymous)'}${file === '' ? '' : ` ${file}:${frame.lineNumber + 1}`}`;
}

function fileOf(frame: CallFrame): string {
  if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const url = frame.url.replace(/^file:\/\//, '');
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm).split('/').slice(0, url.slice(nm).includes('/@') ? 3 : 2).join('/');
  if (url.startsWith('node:')) return url;
  return url.replace(/^.*\/(lib|bench)\//, '$1/');
}

function main(): void {
  const [file, topArg, filterArg, linesArg] = process.argv.slice(2);
  const filter = filterArg === '' ? undefined : filterArg;
  if (file === undefined) throw new Error('usage: profile-summary <file.cpuprofile> [top] [filter]');
  const top = Number(topArg ?? 25);
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackOf = (id: number): ProfileNode[] => {
    const stack: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!);
    return stack;
  };

  const self = new Map<string, number>();
  const hotNodes = new Map<string, Set<ProfileNode>>();
  const inclusive = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  const stacks = new Map<number, ProfileNode[]>();
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    let stack = stacks.get(id);
    if (stack === undefined) stacks.set(id, (stack = stackOf(id)));
    if (filter !== undefined && !stack.some((n) => label(n.callFrame).includes(filter))) return;
    total += dt;
    const leaf = stack[0]!.callFrame;
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
    let nodes = hotNodes.get(label(leaf));
    if (nodes === undefined) hotNodes.set(label(leaf), (nodes = new Set()));
    nodes.add(stack[0]!);
    files.set(fileOf(leaf), (files.get(fileOf(leaf)) ?? 0) + dt);
    for (const name of new Set(stack.map((n) => label(n.callFrame)))) inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
  });

  const idle = self.get('(idle)') ?? 0;
  const busy = total - idle;
  const pct = (us: number, isIdle = false): string => `${((100 * us) / total).toFixed(1).padStart(5)}% ${isIdle ? '     -  ' : `${((100 * us) / busy).toFixed(1).padStart(5)}%b`}`;
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const print = (title: string, map: Map<string, number>, n: number): void => {
    console.log(`\n${title}`);
    for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${pct(us, name === '(idle)')} ${ms(us)}  ${name}`);
  };
  console.log(`${file}: ${(total / 1000).toFixed(0)} ms of samples${filter === undefined ? '' : ` with '${filter}' on the stack`}, ${(busy / 1000).toFixed(0)} ms not idle`);
  console.log('columns: % of all samples, % of non-idle samples (b), time, function');
  print('self time, by function', self, top);
  print('self time, by file', files, 15);
  inclusive.delete('(root)');
  inclusive.delete('(idle)');
  print('inclusive time, by function', inclusive, top);

  // Where inside the hottest functions: V8's per-line ticks (lines of the profiled JavaScript).
  const lineFunctions = Number(linesArg ?? 8);
  console.log(`\nhot lines of the top ${lineFunctions} functions with source (share of each function's ticks; a line outside the function belongs to an inlined callee)`);
  const hottest = [...self].filter(([name]) => / \S+:\d+$/.test(name)).sort((a, b) => b[1] - a[1]).slice(0, lineFunctions);
  for (const [name, us] of hottest) {
    const ticks = new Map<number, number>();
    let all = 0;
    for (const node of hotNodes.get(name) ?? []) {
      for (const { line, ticks: t } of node.positionTicks ?? []) {
        ticks.set(line, (ticks.get(line) ?? 0) + t);
        all += t;
      }
    }
    const lines = [...ticks].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([line, t]) => `L${line} ${((100 * t) / all).toFixed(0)}%`);
    console.log(`${pct(us)}  ${name}: ${lines.join(', ')}`);
  }
}

main();
