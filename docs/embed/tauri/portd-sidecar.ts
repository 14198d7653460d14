// src/portd-sidecar.ts — spawn the portd sidecar from a Tauri v2 webview and wait for `ready`.
import { Command } from '@tauri-apps/plugin-shell';

export async function startPortd(appId: string) {
  const command = Command.sidecar('binaries/portd', ['serve', '--app-id', appId]);
  const pending = new Map<number, (message: any) => void>();
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  command.stdout.on('data', (line: string) => {
    const message = JSON.parse(line);
    if (message.method === 'ready') ready();
    else if ('id' in message) pending.get(message.id)?.(message);
  });
  const child = await command.spawn();
  await isReady;
  let nextId = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<any>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, (m) => (pending.delete(id), m.error ? reject(m.error) : resolve(m.result)));
      child.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
    });
  return { call, kill: () => child.kill() };
}
