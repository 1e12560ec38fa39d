// The service catalogue (GET /v1/services), fetched once per session and shared.
import { api } from './api.js';

let cache = null;
let inflight = null;

export async function loadServices(force = false) {
  if (cache && !force) return cache;
  inflight ??= api
    .get('/v1/services')
    .then((data) => {
      cache = Array.isArray(data?.services) ? data.services : Array.isArray(data) ? data : [];
      return cache;
    })
    .finally(() => {
      inflight = null;
    });
  return inflight;
}

/** "whatsapp" → "WhatsApp" when the catalogue is loaded, otherwise a tidy version of the key. */
export function serviceLabel(key) {
  const found = cache?.find((s) => s.service === key);
  if (found?.name) return found.name;
  return String(key ?? '')
    .replace(/[_-]+/g, ' ')
    .replace(/^\w/, (c) => c.toUpperCase());
}
