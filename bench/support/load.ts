import { Agent, request } from 'node:http';

/**
 * A closed-loop HTTP load generator: `concurrency` workers, each sending its next request as soon
 * as the previous answer is read, over kept-alive connections, for a fixed time. Plain node:http,
 * so it needs nothing beyond Node itself.
 */
export interface LoadRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface LoadResult {
  seconds: number;
  /** Requests answered within the window, by status ('error' for a failed connection). */
  statuses: Record<string, number>;
  /** Answers with the expected status per second of the window. */
  ok_per_second: number;
  latency_ms: { median: number; p99: number };
  /** A few bodies of unexpected answers, for diagnosis. */
  samples: string[];
}

function send(agent: Agent, base: URL, req: LoadRequest): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method: req.method,
        path: req.path,
        headers: req.body === undefined ? req.headers : { ...req.headers, 'content-length': Buffer.byteLength(req.body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        response.on('error', reject);
      },
    );
    r.on('error', reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

export async function runLoad(options: {
  url: string;
  concurrency: number;
  seconds: number;
  expectStatus: number;
  next: (seq: number) => LoadRequest;
}): Promise<LoadResult> {
  const base = new URL(options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const statuses: Record<string, number> = {};
  const latencies: number[] = [];
  const samples: string[] = [];
  let seq = 0;
  let ok = 0;
  const start = performance.now();
  const end = start + options.seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const req = options.next(seq++);
      const sent = performance.now();
      let status: string;
      try {
        const answer = await send(agent, base, req);
        status = String(answer.status);
        if (answer.status !== options.expectStatus && samples.length < 5) samples.push(`${answer.status} ${answer.body.slice(0, 300)}`);
      } catch (error) {
        status = 'error';
        if (samples.length < 5) samples.push(`error ${error instanceof Error ? error.message : String(error)}`);
      }
      const done = performance.now();
      // Only answers that arrive inside the window count: the rate is answers per second of window.
      if (done <= end) {
        statuses[status] = (statuses[status] ?? 0) + 1;
        latencies.push(done - sent);
        if (status === String(options.expectStatus)) ok++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pick = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]! : NaN);
  return {
    seconds: options.seconds,
    statuses,
    ok_per_second: ok / options.seconds,
    latency_ms: { median: Math.round(pick(50) * 10) / 10, p99: Math.round(pick(99) * 10) / 10 },
    samples,
  };
}
