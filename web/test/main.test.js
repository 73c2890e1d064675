// @vitest-environment happy-dom
// main.js, the bootstrap, with MapLibre and deck.gl replaced (no WebGL here): it must hand the page a map
// drawn from the city, an overlay that turns each layer descriptor into the deck.gl layer of its type,
// the browser's fetch and the real live feed.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../src/auth.js';
import { BODY, CITY, FakeSocket, fakeGateway, FRAME } from './page-fixtures.js';

const made = vi.hoisted(() => {
  const made = { maps: [], overlays: [] };
  made.layer = (type) => class {
    constructor(props) {
      Object.assign(this, { type, props });
    }
  };
  return made;
});

vi.mock('maplibre-gl', () => {
  class Map {
    constructor(options) {
      Object.assign(this, { options, controls: [], handlers: {} });
      made.maps.push(this);
    }
    addControl(control, position) { this.controls.push([control, position]); }
    loaded() { return true; }
    getZoom() { return 11; }
    getBounds() { return { getWest: () => 113.4, getSouth: () => 22.4, getEast: () => 113.7, getNorth: () => 22.7 }; }
    on(event, fn) { this.handlers[event] = fn; }
    getCanvasContainer() { return document.createElement('div'); }
  }
  class NavigationControl {}
  return { default: { Map, NavigationControl } };
});
vi.mock('@deck.gl/mapbox', () => ({
  MapboxOverlay: class {
    constructor(props) {
      this.props = props;
      made.overlays.push(this);
    }
    setProps(props) { Object.assign(this.props, props); }
  },
}));
vi.mock('@deck.gl/geo-layers', () => ({ H3HexagonLayer: made.layer('H3HexagonLayer') }));
vi.mock('@deck.gl/layers', () => ({ ArcLayer: made.layer('ArcLayer'), PathLayer: made.layer('PathLayer'), TextLayer: made.layer('TextLayer') }));

const gateway = fakeGateway();

beforeAll(async () => {
  document.body.innerHTML = BODY;
  sessionStorage.setItem(TOKEN_KEY, 'tok');
  vi.stubGlobal('fetch', gateway.fetch);
  vi.stubGlobal('WebSocket', FakeSocket);
  await import('../src/main.js');
  await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(1));
});
afterAll(() => vi.unstubAllGlobals());

describe('main.js', () => {
  it('draws the offline base map of the city, with the overlay and the zoom buttons', () => {
    const [map] = made.maps;
    expect(map.options).toMatchObject({ container: 'map', bounds: [[113, 22], [114, 23]], attributionControl: false });
    expect(map.options.style.name).toBe(`${CITY.name} (offline)`);
    expect(map.controls.map(([c, at]) => [c.constructor.name, at])).toEqual([['MapboxOverlay', undefined], ['NavigationControl', 'bottom-right']]);
    expect(made.overlays[0].props).toMatchObject({ interleaved: false });
    expect(globalThis.__cityscreen.map).toBe(map);
  });

  it('asks the gateway through the browser\'s fetch and follows the live socket with the token', () => {
    expect(gateway.calls.map((c) => c.path)).toEqual(expect.arrayContaining(['config', 'privacy/manifest', 'city', 'totals']));
    expect(FakeSocket.all[0].protocols).toEqual(['cityscreen.v1', 'bearer.tok']);
    expect(FakeSocket.all[0].url).toMatch(/^ws:\/\/.+\/ws\/live$/);
  });

  it('turns every layer descriptor into the deck.gl layer of its type', async () => {
    const socket = FakeSocket.all[0];
    socket.open();
    socket.message(FRAME);
    await vi.waitFor(() => expect(made.overlays[0].props.layers.some((l) => l.props.id === 'cells' && l.props.data.length)).toBe(true));
    expect(made.overlays[0].props.layers.map((l) => [l.type, l.props.id])).toEqual([
      ['H3HexagonLayer', 'cells'], ['PathLayer', 'provisional-hatch'], ['PathLayer', 'district-borders'], ['PathLayer', 'metro-lines'],
      ['ArcLayer', 'flows'], ['TextLayer', 'district-names'], ['TextLayer', 'line-names'],
    ]);
    expect(globalThis.__cityscreen.status).toBe('live');
    expect(document.getElementById('status').textContent).toBe('live');
  });
});
