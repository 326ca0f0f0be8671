import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { USERS, type E2EUser } from './users';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '..', '..');
const bin = process.env.OPSDECK_E2E_BIN ?? path.join(repo, '.venv', 'bin', 'opsdeck');
const resultsDir = path.join(repo, 'test-results');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function createUser(env: NodeJS.ProcessEnv, user: E2EUser): Promise<void> {
  const args = ['users', 'create', '--username', user.username, '--email', user.email, '--password-stdin'];
  if (user.displayName) args.push('--display-name', user.displayName);
  if (user.admin) args.push('--admin');
  const child = execFile(bin, args, { env, cwd: repo });
  child.stdin?.end(`${user.password}\n`);
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`users create ${user.username}: ${stderr}`))));
  });
}

async function waitForReady(url: string, server: ChildProcess, logPath: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) {
      throw new Error(`opsdeck serve exited with ${server.exitCode}:\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
    }
    try {
      const response = await fetch(`${url}/ready`);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`opsdeck serve was not ready within 60 s:\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
}

function stop(server: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (server.exitCode !== null || server.pid === undefined) return resolve();
    const pid = server.pid;
    const killer = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 15_000);
    server.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    // serve stops its own worker on SIGTERM; the group signal is the fallback above.
    server.kill('SIGTERM');
  });
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const dist = path.join(repo, 'frontend', 'dist', 'index.html');
  if (!existsSync(dist)) throw new Error('frontend/dist is missing: run `npm --prefix frontend run build` first');
  if (!existsSync(bin)) throw new Error(`${bin} not found: run \`make install\` first (or set OPSDECK_E2E_BIN)`);

  mkdirSync(resultsDir, { recursive: true });
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'opsdeck-e2e-'));
  const port = await freePort();
  const baseURL = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OPSDECK_DATA_DIR: dataDir,
    OPSDECK_HOST: '127.0.0.1',
    OPSDECK_PORT: String(port),
    OPSDECK_ENVIRONMENT: 'test',
    OPSDECK_LOG_LEVEL: 'WARNING',
    OPSDECK_WORKER_CONCURRENCY: '1',
    // images.spec.ts serves its test images from a loopback HTTP server, which the outbound
    // guard refuses unless opened on purpose.
    OPSDECK_FETCH_ALLOWED_NETWORKS: '127.0.0.0/8',
  };

  await run(bin, ['db', 'upgrade'], { env, cwd: repo });
  await Promise.all(Object.values(USERS).map((user) => createUser(env, user)));

  const logPath = path.join(resultsDir, 'e2e-server.log');
  const log = createWriteStream(logPath);
  const server = spawn(bin, ['serve'], { env, cwd: repo, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout?.pipe(log);
  server.stderr?.pipe(log);
  try {
    await waitForReady(baseURL, server, logPath);
    const index = await (await fetch(`${baseURL}/`)).text();
    if (!index.includes('id="root"')) {
      throw new Error(
        'opsdeck serve does not serve the built web app at / — create_app() must call ' +
          'mount_spa(app, default_dist_dir()) from opsdeck.core.spa',
      );
    }
  } catch (error) {
    await stop(server);
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }

  process.env.OPSDECK_E2E_BASE_URL = baseURL;
  return async () => {
    await stop(server);
    log.end();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
