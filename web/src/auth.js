// The operator token: read from the URL fragment once (`#token=...`), then kept in sessionStorage.
// The fragment is cleared so the token does not linger in the address bar or in bookmarks.

export const TOKEN_KEY = 'cityscreen.token';

/** Token from a fragment like "#token=abc&x=1", or null. */
export function tokenFromHash(hash) {
  const params = new URLSearchParams((hash ?? '').replace(/^#/, ''));
  return params.get('token') || null;
}

export function takeToken(location, history, storage) {
  const fromHash = tokenFromHash(location.hash);
  if (fromHash) {
    storage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return storage.getItem(TOKEN_KEY);
}
