import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('package', () => {
  it("builds JavaScript and .d.ts that a consumer imports as 'coldstream'", function () {
    this.timeout(120_000);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstream-build-'));
    try {
      // Build into a temporary outDir so the test leaves no dist/ behind in the tree.
      execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', path.join(out, 'dist')], { cwd: root, stdio: 'pipe' });
      expect(fs.existsSync(path.join(out, 'dist/lib/index.d.ts'))).to.equal(true);
      // A consumer: a package that depends on coldstream, resolved through package.json "exports".
      const consumer = path.join(out, 'consumer');
      const installed = path.join(consumer, 'node_modules', 'coldstream');
      fs.mkdirSync(path.dirname(installed), { recursive: true });
      fs.mkdirSync(installed);
      fs.copyFileSync(path.join(root, 'package.json'), path.join(installed, 'package.json'));
      fs.cpSync(path.join(out, 'dist'), path.join(installed, 'dist'), { recursive: true });
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(installed, 'node_modules'));
      const script = `
        import { EventStore, isColdstreamError } from 'coldstream';
        const store = await EventStore.open({ dir: process.argv[2], durability: 'none' });
        await store.appendToStream('s', [{ type: 't', data: { ok: true } }]);
        for await (const e of store.readStream('s')) console.log(e.type, JSON.stringify(e.data), typeof isColdstreamError);
        await store.close();`;
      fs.writeFileSync(path.join(consumer, 'main.mjs'), script);
      const printed = execFileSync(process.execPath, ['main.mjs', path.join(out, 'data')], { cwd: consumer, encoding: 'utf8' });
      expect(printed.trim()).to.equal('t {"ok":true} function');
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
