// Session-wide data: the user, their wallet and unread notifications, kept fresh by live events.
import { api, request } from './api.js';
import { setState, state } from './state.js';
import { on, startLive, stopLive } from './live.js';
import { TERMINAL_STATES } from './format.js';

let wired = false;
let walletTimer = null;

export async function loadSession() {
  const me = await api.get('/v1/me', { authRedirect: false });
  setState({ user: me.user, wallet: me.wallet ?? state.wallet });
  afterLogin();
  return me;
}

export function afterLogin() {
  wireLiveOnce();
  startLive();
  refreshUnread();
  if (!state.wallet) refreshWallet();
}

export async function refreshWallet() {
  try {
    const wallet = await api.get('/v1/wallet');
    setState({ wallet });
    return wallet;
  } catch {
    return state.wallet;
  }
}

/** Coalesce bursts of events into one wallet fetch. */
export function refreshWalletSoon(delay = 150) {
  clearTimeout(walletTimer);
  walletTimer = setTimeout(refreshWallet, delay);
}

export async function refreshUnread() {
  try {
    const page = await api.get('/v1/notifications');
    const unread = typeof page.unread === 'number' ? page.unread : (page.items ?? []).filter((n) => !n.read_at).length;
    setState({ unread });
  } catch {
    /* the badge just stays as it was */
  }
}

function wireLiveOnce() {
  if (wired) return;
  wired = true;
  on('wallet', (wallet) => {
    if (typeof wallet.available_minor === 'number') setState({ wallet: { ...state.wallet, ...wallet } });
  });
  on('notification', (notification) => {
    if (!notification.read_at) setState({ unread: state.unread + 1 });
  });
  // A verification that settles changes the wallet; fetch it even if the server sends no
  // `wallet` event, so the header is right either way.
  on('verification', (verification) => {
    if (TERMINAL_STATES.has(verification.state) || verification.state === 'pending') refreshWalletSoon();
  });
  on('open', () => {
    refreshWalletSoon();
    refreshUnread();
  });
}

export async function logout() {
  try {
    await request('POST', '/v1/auth/logout', { authRedirect: false });
  } finally {
    endSession();
  }
}

export function endSession() {
  stopLive();
  setState({ user: null, wallet: null, unread: 0 });
}
