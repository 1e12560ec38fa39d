// Live updates over server-sent events (GET /v1/events, authenticated by the session cookie).
// Named events: `verification`, `notification`, `wallet`, `top_up`. The browser's EventSource reconnects by
// itself after a dropped connection; when the server refuses the stream (e.g. 401) it stops, and
// we reconnect with a backoff after checking the session.
import { setState } from './state.js';

const handlers = { verification: new Set(), notification: new Set(), wallet: new Set(), top_up: new Set(), open: new Set() };
let source = null;
let retryTimer = null;
let retryDelay = 1000;
let wanted = false;

function emit(kind, payload) {
  for (const handler of handlers[kind]) {
    try {
      handler(payload);
    } catch (error) {
      console.error(`live ${kind} handler failed`, error);
    }
  }
}

function parse(event, key) {
  try {
    const data = JSON.parse(event.data);
    // Accept both the bare object and an envelope such as { verification: {...} }.
    return data && typeof data === 'object' && data[key] && typeof data[key] === 'object' ? data[key] : data;
  } catch {
    return null;
  }
}

function connect() {
  if (!wanted || source) return;
  setState({ live: 'connecting' });
  const es = new EventSource('/v1/events');
  source = es;
  es.addEventListener('open', () => {
    retryDelay = 1000;
    setState({ live: 'live' });
    // Anything that happened while we were not connected is fetched again by the listeners.
    emit('open', null);
  });
  for (const kind of ['verification', 'notification', 'wallet', 'top_up']) {
    es.addEventListener(kind, (event) => {
      const payload = parse(event, kind);
      if (payload) emit(kind, payload);
    });
  }
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CLOSED) {
      source = null;
      setState({ live: 'offline' });
      if (wanted) {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30_000);
      }
    } else {
      setState({ live: 'connecting' });
    }
  });
}

export function startLive() {
  wanted = true;
  connect();
}

export function stopLive() {
  wanted = false;
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  setState({ live: 'off' });
}

export function isLive() {
  return source !== null && source.readyState === EventSource.OPEN;
}

/** on('verification', fn) → unsubscribe function. */
export function on(kind, handler) {
  handlers[kind].add(handler);
  return () => handlers[kind].delete(handler);
}
