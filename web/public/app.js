// Entry point: the page shell (header, navigation, balances) and the hash router.
import { h, fill } from './dom.js';
import { onUnauthenticated } from './api.js';
import { state, subscribe, isAdmin, setFlash } from './state.js';
import { loadSession, logout, endSession } from './session.js';
import { formatMoney } from './format.js';
import { errorBox, loading, toast } from './ui.js';

const routes = [
  { pattern: /^\/login$/, page: 'login', title: 'Log in', public: true },
  { pattern: /^\/signup$/, page: 'login', title: 'Create an account', public: true, params: { mode: 'signup' } },
  { pattern: /^\/forgot-password$/, page: 'forgot-password', title: 'Forgot password', public: true },
  { pattern: /^\/reset-password$/, page: 'reset-password', title: 'Choose a new password', public: true, open: true },
  { pattern: /^\/verify-email$/, page: 'verify-email', title: 'Verify your email', public: true, open: true },
  { pattern: /^\/account$/, page: 'account', title: 'Account' },
  { pattern: /^\/buy$/, page: 'buy', title: 'Buy a number' },
  { pattern: /^\/verifications\/([^/]+)$/, page: 'verification', title: 'Verification', keys: ['id'] },
  { pattern: /^\/history$/, page: 'history', title: 'History' },
  { pattern: /^\/wallet$/, page: 'wallet', title: 'Wallet' },
  { pattern: /^\/top-ups$/, page: 'top-ups', title: 'Add funds' },
  { pattern: /^\/top-ups\/([^/]+)$/, page: 'top-up', title: 'Top-up', keys: ['id'] },
  { pattern: /^\/notifications$/, page: 'notifications', title: 'Notifications' },
  { pattern: /^\/api-keys$/, page: 'api-keys', title: 'API keys' },
  { pattern: /^\/webhooks$/, page: 'webhooks', title: 'Webhooks' },
  { pattern: /^\/admin\/users$/, page: 'admin-users', title: 'Users', admin: true },
  { pattern: /^\/admin\/verifications$/, page: 'admin-verifications', title: 'All verifications', admin: true },
  { pattern: /^\/admin\/ops$/, page: 'admin-ops', title: 'Operations', admin: true },
  { pattern: /^\/admin\/upstreams$/, page: 'admin-upstreams', title: 'Upstreams', admin: true },
  { pattern: /^\/admin\/mail$/, page: 'admin-mail', title: 'Mail outbox', admin: true },
];

const NAV = [
  { href: '#/buy', label: 'Buy' },
  { href: '#/history', label: 'History' },
  { href: '#/wallet', label: 'Wallet' },
  { href: '#/top-ups', label: 'Add funds' },
  { href: '#/notifications', label: 'Notifications', badge: true },
  { href: '#/api-keys', label: 'API keys' },
  { href: '#/webhooks', label: 'Webhooks' },
  { href: '#/account', label: 'Account' },
];
const ADMIN_NAV = [
  { href: '#/admin/users', label: 'Users' },
  { href: '#/admin/verifications', label: 'Verifications' },
  { href: '#/admin/ops', label: 'Ops' },
  { href: '#/admin/upstreams', label: 'Upstreams' },
  { href: '#/admin/mail', label: 'Mail' },
];

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
let returnTo = null;
let renderToken = 0;
let current = null; // { controller, cleanups }

function navigate(hash, { replace = false } = {}) {
  if (location.hash === hash) {
    route();
  } else if (replace) {
    history.replaceState(null, '', hash);
    route();
  } else {
    location.hash = hash;
  }
}

/** Where to go after logging in. */
function takeReturnTo() {
  const target = returnTo && returnTo !== '#/login' && returnTo !== '#/signup' ? returnTo : '#/buy';
  returnTo = null;
  return target;
}

// ---------------------------------------------------------------- header

let headerParts = null;

function buildHeader() {
  const balance = h('span', { class: 'balance-value', id: 'balance-available' }, '—');
  const held = h('span', { class: 'balance-value', id: 'balance-held' }, '—');
  const unreadBadge = h('span', { class: 'nav-badge', hidden: true, id: 'unread-badge' });
  const liveDot = h('span', { class: 'live-dot', id: 'live-status', role: 'status', title: 'Live updates' }, h('span', { class: 'visually-hidden' }, 'Live updates: off'));
  const navList = h('ul', { class: 'nav-list' });
  const adminList = h('ul', { class: 'nav-list nav-admin', hidden: true, 'aria-label': 'Operator' });
  const adminLabel = h('span', { class: 'nav-group-label', hidden: true, 'aria-hidden': 'true' }, 'Operator');
  const nav = h('nav', { class: 'nav', id: 'primary-nav', 'aria-label': 'Main' }, navList, adminLabel, adminList);
  const menuButton = h('button', { type: 'button', class: 'menu-toggle button ghost small', 'aria-expanded': 'false', 'aria-controls': 'primary-nav' }, 'Menu');
  const email = h('span', { class: 'account-email', id: 'account-email' });
  const logoutButton = h('button', { type: 'button', class: 'button ghost small', id: 'logout-button' }, 'Log out');

  for (const item of NAV) {
    const link = h('a', { href: item.href, class: 'nav-link' }, item.label, item.badge ? unreadBadge : null);
    navList.append(h('li', null, link));
  }
  for (const item of ADMIN_NAV) {
    adminList.append(h('li', null, h('a', { href: item.href, class: 'nav-link' }, item.label)));
  }

  menuButton.addEventListener('click', () => {
    const open = menuButton.getAttribute('aria-expanded') !== 'true';
    menuButton.setAttribute('aria-expanded', String(open));
    nav.classList.toggle('open', open);
  });
  logoutButton.addEventListener('click', async () => {
    logoutButton.disabled = true;
    try {
      await logout();
    } catch {
      /* the session is cleared locally either way */
    }
    logoutButton.disabled = false;
    setFlash({ kind: 'info', text: 'You are logged out.' });
    navigate('#/login');
  });

  fill(
    topbar,
    h(
      'div',
      { class: 'topbar-inner' },
      h(
        'div',
        { class: 'topbar-row' },
        h('a', { class: 'brand', href: '#/buy' }, h('img', { src: 'favicon.svg', alt: '', width: '28', height: '28' }), h('span', null, 'Namaskah')),
        menuButton,
        h(
          'div',
          { class: 'account' },
          h(
            'dl',
            { class: 'balances', 'aria-label': 'Wallet balance' },
            h('div', { class: 'balance' }, h('dt', null, 'Available'), h('dd', null, balance)),
            h('div', { class: 'balance balance-held' }, h('dt', null, 'Held'), h('dd', null, held)),
          ),
          h('div', { class: 'account-line' }, liveDot, email, logoutButton),
        ),
      ),
      nav,
    ),
  );
  headerParts = { balance, held, unreadBadge, liveDot, adminList, adminLabel, email, nav, menuButton };
  updateHeader();
  updateActiveLink();
}

function updateHeader() {
  if (!headerParts) return;
  const { balance, held, unreadBadge, liveDot, adminList, adminLabel, email } = headerParts;
  const wallet = state.wallet;
  balance.textContent = wallet ? formatMoney(wallet.available_minor, wallet.currency) : '—';
  held.textContent = wallet ? formatMoney(wallet.held_minor, wallet.currency) : '—';
  unreadBadge.hidden = !state.unread;
  unreadBadge.textContent = state.unread ? String(state.unread) : '';
  unreadBadge.setAttribute('aria-label', `${state.unread} unread`);
  liveDot.dataset.state = state.live;
  liveDot.firstChild.textContent = `Live updates: ${state.live === 'live' ? 'on' : state.live}`;
  liveDot.title = state.live === 'live' ? 'Live updates on' : `Live updates ${state.live}`;
  adminList.hidden = !isAdmin();
  adminLabel.hidden = !isAdmin();
  email.textContent = state.user?.email ?? '';
}

function updateActiveLink() {
  if (!headerParts) return;
  const hash = location.hash.split('?')[0];
  for (const link of topbar.querySelectorAll('a.nav-link')) {
    const target = link.getAttribute('href');
    const active =
      hash === target || (target === '#/history' && hash.startsWith('#/verifications/')) || (target === '#/top-ups' && hash.startsWith('#/top-ups/'));
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  headerParts.nav.classList.remove('open');
  headerParts.menuButton.setAttribute('aria-expanded', 'false');
}

subscribe(updateHeader);

// ---------------------------------------------------------------- router

function match(path) {
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    const params = { ...(r.params ?? {}) };
    (r.keys ?? []).forEach((key, i) => {
      params[key] = decodeURIComponent(m[i + 1]);
    });
    return { route: r, params };
  }
  return null;
}

function teardown() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups) {
    try {
      fn();
    } catch (error) {
      console.error(error);
    }
  }
  current = null;
}

function focusTitle() {
  const title = main.querySelector('.page-title');
  (title ?? main).focus({ preventScroll: false });
}

async function route() {
  const hash = location.hash;
  if (!hash.startsWith('#/')) {
    navigate(state.user ? '#/buy' : '#/login', { replace: true });
    return;
  }
  const path = hash.slice(1).split('?')[0];
  const found = match(path);
  const token = ++renderToken;
  teardown();

  if (!found) {
    topbar.hidden = !state.user;
    if (state.user && !headerParts) buildHeader();
    fill(main, h('div', { class: 'page-header' }, h('h1', { class: 'page-title', tabindex: '-1' }, 'Page not found')), h('p', null, 'There is nothing at this address. ', h('a', { href: '#/buy' }, 'Go to Buy a number'), '.'));
    document.title = 'Not found · Namaskah';
    focusTitle();
    return;
  }
  const { route: r, params } = found;
  if (!r.public && !state.user) {
    returnTo = hash;
    navigate('#/login', { replace: true });
    return;
  }
  // Links from emails (verify, reset) open whether or not someone is signed in.
  if (r.public && state.user && !r.open) {
    navigate('#/buy', { replace: true });
    return;
  }

  topbar.hidden = r.public;
  document.body.classList.toggle('public', Boolean(r.public));
  if (!r.public) {
    if (!headerParts) buildHeader();
    updateHeader();
    updateActiveLink();
  }
  document.title = `${r.title} · Namaskah`;

  if (r.admin && !isAdmin()) {
    fill(main, h('div', { class: 'page-header' }, h('h1', { class: 'page-title', tabindex: '-1' }, r.title)), h('div', { class: 'alert alert-calm', role: 'status' }, h('p', null, 'This page is for operators. Your account does not have access to it.')));
    focusTitle();
    return;
  }

  const controller = new AbortController();
  const cleanups = [];
  current = { controller, cleanups };
  fill(main, loading());
  let module;
  try {
    module = await import(`./pages/${r.page}.js`);
  } catch (error) {
    if (token !== renderToken) return;
    const box = errorBox();
    box.show('This page could not be loaded. Check your connection and reload.');
    fill(main, box.el);
    return;
  }
  if (token !== renderToken) return;
  main.replaceChildren();
  main.dataset.page = r.page;
  const ctx = {
    params,
    signal: controller.signal,
    onCleanup: (fn) => cleanups.push(fn),
    isCurrent: () => token === renderToken,
    navigate,
  };
  const rendering = Promise.resolve().then(() => module.render(main, ctx));
  requestAnimationFrame(() => {
    if (token === renderToken) focusTitle();
  });
  try {
    await rendering;
  } catch (error) {
    if (controller.signal.aborted || error?.name === 'AbortError' || token !== renderToken) return;
    console.error(error);
    const box = errorBox();
    box.show(error);
    main.append(box.el);
  }
}

// ---------------------------------------------------------------- boot

onUnauthenticated(() => {
  if (!state.user) return;
  endSession();
  setFlash({ kind: 'error', text: 'Your session has ended. Please log in again.' });
  returnTo = location.hash;
  navigate('#/login');
});

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  focusTitle();
});

window.addEventListener('hashchange', route);
window.addEventListener('namaskah:logged-in', () => {
  buildHeader();
  navigate(takeReturnTo());
});

async function boot() {
  try {
    await loadSession();
  } catch (error) {
    if (error?.status && error.status !== 401) toast('Could not load your account. Some information may be missing.', 'error');
  }
  route();
}

boot();
