// main/portd-sidecar.ts — spawn the portd sidecar from Electron's main process.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';

export function startPortd(triple: string, appId: string) {
  const binary = path.join(process.resourcesPath, 'binaries', `portd-${triple}`);
  const child = spawn(binary, ['serve', '--parent-pid', String(process.pid), '--app-id', appId], {
    stdio: ['pipe', 'pipe', 'inherit'],
    windowsHide: true,
  });
  const lines = createInterface({ input: child.stdout });
  const pending = new Map<number, (message: any) => void>();
  const ready = new Promise<void>((resolve) =>
    lines.on('line', (line) => {
      const message = JSON.parse(line);
      if (message.method === 'ready') resolve();
      else if ('id' in message) pending.get(message.id)?.(message);
    }),
  );
  let nextId = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<any>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, (m) => (pending.delete(id), m.error ? reject(m.error) : resolve(m.result)));
      child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
    });
  return { ready, call, child };
}
