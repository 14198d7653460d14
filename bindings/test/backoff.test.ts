// Back-off timing of ConnectionResilienceService, with fake timers and an in-process sidecar.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ConnectionError,
  ConnectionResilienceService,
  DEFAULT_RECONNECTION_CONFIG,
  PortdClient,
} from '../src/index.js';
import { FakeSidecar, HANG, defaultHandler, type FakeOptions } from './support/fake.js';

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});

afterEach(() => {
  vi.useRealTimers();
});

/** A factory whose n-th spawn behaves as `plan[n]` (the last entry repeats); spawn times recorded. */
function scripted(plan: FakeOptions[]) {
  const spawned: FakeSidecar[] = [];
  const times: number[] = [];
  const factory = () => {
    const options = plan[Math.min(spawned.length, plan.length - 1)] ?? {};
    const s = new FakeSidecar(options);
    spawned.push(s);
    times.push(Date.now());
    return s;
  };
  return { factory, spawned, times };
}

async function start(plan: FakeOptions[], config = {}, options = {}) {
  const script = scripted(plan);
  const client = new PortdClient(script.factory);
  const resilience = new ConnectionResilienceService(client, { jitter: false, ...config }, { checkInterval: 0, ...options });
  await resilience.startMonitoring();
  expect(client.state).toBe('ready');
  return { ...script, client, resilience };
}

describe('reconnection back-off (fake timers)', () => {
  it('has the seed defaults', () => {
    expect(DEFAULT_RECONNECTION_CONFIG).toEqual({
      maxRetries: 10,
      initialDelay: 1000,
      maxDelay: 30_000,
      backoffFactor: 2,
      jitter: true,
    });
    const r = new ConnectionResilienceService(new PortdClient());
    expect(r.config).toEqual(DEFAULT_RECONNECTION_CONFIG);
  });

  it('waits 1 s, 2 s, 4 s, 8 s… between attempts, capped at 30 s', async () => {
    const { spawned, times, client, resilience } = await start([{}, { fail: true }]);
    spawned[0]?.die();
    expect(client.state).toBe('reconnecting');
    const died = Date.now();

    const expected = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
    let at = died;
    for (const [i, delay] of expected.entries()) {
      expect(resilience.getConnectionStats().nextDelay).toBe(delay);
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(spawned).toHaveLength(1 + i); // not yet
      await vi.advanceTimersByTimeAsync(1);
      expect(spawned).toHaveLength(2 + i); // now
      at += delay;
      expect(times.at(-1)).toBe(at);
    }
    expect(resilience.getConnectionStats()).toMatchObject({ state: 'reconnecting', failedAttempts: 7, consecutiveFailures: 7 });
    resilience.stopMonitoring();
  });

  it('calls made while reconnecting wait for ready and are sent to the new sidecar', async () => {
    const { spawned, client, resilience } = await start([{}, { fail: true }, { fail: true }, {}]);
    spawned[0]?.die();
    const call = client.allocatePort('vite', 1500);
    await vi.advanceTimersByTimeAsync(1000 + 2000 + 4000);
    expect(spawned).toHaveLength(4);
    await expect(call).resolves.toBe(1500);
    expect(spawned[3]?.sent.map((m) => m.method)).toContain('allocate_port');
    expect(resilience.getConnectionStats()).toMatchObject({
      state: 'connected',
      totalAttempts: 3,
      failedAttempts: 2,
      successfulAttempts: 1,
      reconnections: 1,
      consecutiveFailures: 0,
    });
    resilience.stopMonitoring();
  });

  it('bounds the wait by the call time-out', async () => {
    const { spawned, client, resilience } = await start([{}, { fail: true }]);
    spawned[0]?.die();
    const call = client.getStats({ timeoutMs: 2500 });
    const outcome = call.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(2500);
    const error = await outcome;
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ reason: 'timeout' });
    expect((error as Error).message).toMatch(/restarted/);
    resilience.stopMonitoring();
  });

  it('gives up after maxRetries: state failed, waiting calls fail', async () => {
    const { spawned, client, resilience } = await start([{}, { fail: true }], { maxRetries: 3 });
    spawned[0]?.die();
    const call = client.getStats({ timeoutMs: 0 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1000 + 2000 + 4000);
    expect(spawned).toHaveLength(4);
    const error = await call;
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toMatch(/gave up .* 3 attempt/);
    expect(resilience.getConnectionStats()).toMatchObject({ state: 'failed', failedAttempts: 3 });
    expect(client.state).toBe('disconnected');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(spawned).toHaveLength(4); // no more attempts
    await expect(client.getStats()).rejects.toMatchObject({ reason: 'closed' });
  });

  it('applies jitter within [delay/2, delay]', async () => {
    const low = new ConnectionResilienceService(new PortdClient(), {}, { random: () => 0 });
    const high = new ConnectionResilienceService(new PortdClient(), {}, { random: () => 0.999_999 });
    expect([0, 1, 2, 3].map((n) => low.computeDelay(n))).toEqual([500, 1000, 2000, 4000]);
    expect([0, 1, 2, 3].map((n) => high.computeDelay(n))).toEqual([1000, 2000, 4000, 8000]);
    expect(low.computeDelay(20)).toBe(15_000);
    expect(high.computeDelay(20)).toBe(30_000);

    const { spawned, resilience } = await start([{}, { fail: true }], { jitter: true }, { random: () => 0 });
    spawned[0]?.die();
    await vi.advanceTimersByTimeAsync(499);
    expect(spawned).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(spawned).toHaveLength(2);
    resilience.stopMonitoring();
  });

  it('restarts a sidecar that stops answering pings', async () => {
    let hang = false;
    const handler = (method: string, params: Record<string, unknown>) =>
      hang && method === 'get_stats' ? HANG : defaultHandler(method, params);
    const { spawned, client, resilience } = await start([{ handler }, {}], {}, { checkInterval: 10_000, checkTimeout: 3000 });
    hang = true;
    await vi.advanceTimersByTimeAsync(10_000 + 3000); // ping, no answer within 3 s: killed
    expect(spawned[0]?.alive).toBe(false);
    expect(client.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(1000);
    expect(spawned).toHaveLength(2);
    expect(client.state).toBe('ready');
    resilience.stopMonitoring();
  });

  it('a ready that never comes is a ConnectionError("timeout")', async () => {
    const never = () => new FakeSidecar({ silent: true });
    const client = new PortdClient(never, { readyTimeoutMs: 5000 });
    const ready = client.ready.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await ready).toMatchObject({ reason: 'timeout' });
    expect(client.state).toBe('disconnected');
  });
});
