// The little shared state the whole app needs: who is logged in, their wallet, unread count.
const listeners = new Set();

export const state = {
  user: null, // { id, email, role, created_at }
  wallet: null, // { balance_minor, held_minor, available_minor, currency }
  unread: 0,
  live: 'off', // 'off' | 'connecting' | 'live' | 'offline'
};

export function setState(patch) {
  Object.assign(state, patch);
  for (const listener of listeners) listener(state);
}

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function currency() {
  return state.wallet?.currency || 'USD';
}

export function isAdmin() {
  return state.user?.role === 'admin';
}

// A message for the login page to show once (e.g. "Your session has ended").
let flash = null;
export function setFlash(message) {
  flash = message;
}
export function takeFlash() {
  const message = flash;
  flash = null;
  return message;
}
