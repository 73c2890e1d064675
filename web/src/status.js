// The connection status in the header and the notice over the map, in words.

/** The header's words for a LiveFeed status ({state, attempt, retryInMs}) or the page's own states. */
export function statusText(s) {
  const text = {
    connecting: 'connecting', live: 'live', waiting: 'live · waiting for first window',
    disconnected: `disconnected · retry in ${Math.round((s.retryInMs ?? 0) / 100) / 10}s`,
    reconnecting: `reconnecting (attempt ${s.attempt})`, unauthorized: 'token refused', stopped: 'stopped',
  };
  return text[s.state] ?? s.state;
}

/** Write status `s` into #status: its words, and its state as data-state and a status-<state> class. */
export function showStatus(root, s) {
  const node = root.getElementById('status');
  node.textContent = statusText(s);
  node.dataset.state = s.state;
  node.className = `status status-${s.state}`;
}

/** Show the notice over the map (trusted markup: the page's own words). */
export function showNotice(root, html) {
  const node = root.getElementById('notice');
  node.innerHTML = html;
  node.hidden = false;
}
