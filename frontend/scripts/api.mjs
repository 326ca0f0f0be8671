// The generated API client: `generate` exports the server's OpenAPI schema (no server needed)
// into openapi.json and turns it into src/api/schema.d.ts; `check` does the same in memory and
// fails when the committed files differ, i.e. the client is stale.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';

const frontend = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(frontend, '..');
const schemaJson = join(frontend, 'openapi.json');
const schemaTypes = join(frontend, 'src', 'api', 'schema.d.ts');
const python = process.env.OPSDECK_PYTHON ?? join(repo, '.venv', 'bin', 'python');

const EXPORT = `
import json, sys
from opsdeck.app import create_app
from opsdeck.settings import Settings
app = create_app(Settings(_env_file=None, data_dir=sys.argv[1]), check_migrations=False)
print(json.dumps(app.openapi(), indent=2, ensure_ascii=False))
`;

function exportSchema() {
  if (!existsSync(python)) {
    throw new Error(`${python} not found: run \`make install\` first (or set OPSDECK_PYTHON)`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'opsdeck-openapi-'));
  try {
    const out = execFileSync(python, ['-c', EXPORT, dataDir], {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, OPSDECK_LOG_LEVEL: 'WARNING' },
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 64 * 1024 * 1024,
    });
    return `${JSON.stringify(JSON.parse(out), null, 2)}\n`;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function typesFor(json) {
  const ast = await openapiTS(JSON.parse(json), { alphabetize: false });
  const header =
    '/**\n * Generated from openapi.json by `npm run gen:api` (openapi-typescript). Do not edit.\n */\n\n';
  return header + astToString(ast);
}

const mode = process.argv[2];
const json = exportSchema();
const types = await typesFor(json);

if (mode === 'generate') {
  writeFileSync(schemaJson, json);
  writeFileSync(schemaTypes, types);
  console.log(`wrote ${relative(repo, schemaJson)} and ${relative(repo, schemaTypes)}`);
} else if (mode === 'check') {
  const stale = [];
  if (!existsSync(schemaJson) || readFileSync(schemaJson, 'utf8') !== json) stale.push(schemaJson);
  if (!existsSync(schemaTypes) || readFileSync(schemaTypes, 'utf8') !== types) stale.push(schemaTypes);
  if (stale.length > 0) {
    for (const path of stale) console.error(`stale: ${relative(repo, path)}`);
    console.error('The generated API client does not match the server: run `npm --prefix frontend run gen:api`.');
    process.exit(1);
  }
  console.log('API client is up to date with the server schema.');
} else {
  console.error('usage: node scripts/api.mjs generate|check');
  process.exit(2);
}
