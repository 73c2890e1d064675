// The page's entry point: the real MapLibre map with its deck.gl overlay, the live websocket and the
// browser's fetch, handed to the Screen (screen.js), which does the wiring and is tested without WebGL.

import maplibregl from 'maplibre-gl';
import 'maplibre-gl/dist/maplibre-gl.css';
import { MapboxOverlay } from '@deck.gl/mapbox';
import { H3HexagonLayer } from '@deck.gl/geo-layers';
import { ArcLayer, PathLayer, TextLayer } from '@deck.gl/layers';
import './style.css';
import { cityBounds, cityStyle } from './basemap.js';
import { LiveFeed } from './live-feed.js';
import { newDebug, Screen } from './screen.js';

const DECK_TYPES = { H3HexagonLayer, ArcLayer, PathLayer, TextLayer };
// the whole city in view at start, clear of the panels over the map (controls, headline, side, legend)
const CITY_PADDING = { top: 140, left: 215, right: 300, bottom: 20 };
// Set window.CITYSCREEN_BASEMAP_STYLE (a style URL) before main.js to use an online basemap instead.
const ONLINE_STYLE = globalThis.CITYSCREEN_BASEMAP_STYLE ?? null;

/** The base map of `city` in #map and its deck.gl overlay; `draw` makes deck.gl layers of descriptors. */
function createMap(city) {
  const map = new maplibregl.Map({
    container: 'map', style: ONLINE_STYLE ?? cityStyle(city), bounds: cityBounds(city),
    fitBoundsOptions: { padding: CITY_PADDING }, attributionControl: false,
  });
  const overlay = new MapboxOverlay({ interleaved: false, layers: [] });
  map.addControl(overlay);
  map.addControl(new maplibregl.NavigationControl(), 'bottom-right');
  return { map, draw: (descriptors) => overlay.setProps({ layers: descriptors.map((d) => new DECK_TYPES[d.type](d.props)) }) };
}

const screen = new Screen({
  document, location: window.location, history: window.history, storage: window.sessionStorage,
  // wrapped: browsers throw "Illegal invocation" when fetch is called as a method of another object
  fetch: (url, init) => window.fetch(url, init),
  createMap, createFeed: (opts) => new LiveFeed(opts),
  debug: (globalThis.__cityscreen = newDebug()),
});
screen.start();
