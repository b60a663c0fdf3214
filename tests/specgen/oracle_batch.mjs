// Batch driver for the parity oracle: runs many `openspec show --json` / `openspec list --json`
// invocations inside ONE Node process, through the installed CLI's own command classes (the
// same code the `openspec` binary runs after commander has parsed its flags). One process for a
// whole corpus instead of ~0.6 s of Node start-up per item.
//
// usage: node oracle_batch.mjs <dist-dir> <jobs.json> <out.json>
//   jobs: [{"cmd": "show", "cwd": DIR, "id": ID, "type": "spec"|"change"},
//          {"cmd": "list", "cwd": DIR, "mode": "specs"|"changes"}]
//   out:  [{"stdout": "...", "stderr": "...", "exitCode": N}, ...] in job order
//
// tests/specgen/test_parity_oracle.py checks this driver against the real binary on a sample.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [distDir, jobsPath, outPath] = process.argv.slice(2).map((p) => path.resolve(p));
const load = (rel) => import(pathToFileURL(path.join(distDir, rel)).href);
const { ShowCommand } = await load('commands/show.js');
const { ListCommand } = await load('core/list.js');
const { resolveRootForCommand, toRootOutput } = await load('core/root-selection.js');
const { asStatus } = await load('commands/shared-output.js');

const jobs = JSON.parse(readFileSync(jobsPath, 'utf-8'));
const results = [];
const origLog = console.log;
const origError = console.error;
const origWarn = console.warn;

for (const job of jobs) {
  const out = [];
  const err = [];
  console.log = (...a) => out.push(a.join(' '));
  console.error = (...a) => err.push(a.join(' '));
  console.warn = (...a) => err.push(a.join(' '));
  process.exitCode = undefined;
  try {
    process.chdir(job.cwd);
    if (job.cmd === 'show') {
      // cli/index.js `show` action: errors go through failWithError(..., 'show_error').
      try {
        await new ShowCommand().execute(job.id, { json: true, type: job.type, interactive: false });
      } catch (error) {
        console.log(JSON.stringify({ status: [asStatus(error, 'show_error')] }, null, 2));
        process.exitCode = 1;
      }
    } else if (job.cmd === 'list') {
      const specs = job.mode === 'specs';
      const payload = specs ? { specs: [], root: null } : { changes: [], root: null };
      try {
        const root = await resolveRootForCommand({}, {
          json: true,
          failurePayload: payload,
          allowImplicitRoot: existsSync(path.join(process.cwd(), 'openspec', 'project.md')),
        });
        if (root) {
          await new ListCommand().execute(root.path, specs ? 'specs' : 'changes', {
            sort: 'recent', json: true, root: toRootOutput(root),
          });
        }
      } catch (error) {
        console.log(JSON.stringify({ ...payload, status: [asStatus(error, 'list_error')] }, null, 2));
        process.exitCode = 1;
      }
    } else {
      throw new Error(`unknown job ${JSON.stringify(job)}`);
    }
  } catch (error) {
    err.push(`oracle_batch: ${error && error.stack ? error.stack : error}`);
    process.exitCode = 99;
  }
  console.log = origLog;
  console.error = origError;
  console.warn = origWarn;
  results.push({ stdout: out.join('\n') + (out.length ? '\n' : ''), stderr: err.join('\n'), exitCode: process.exitCode ?? 0 });
}
process.exitCode = 0;
writeFileSync(outPath, JSON.stringify(results));
