// The hover tooltip's wiring: what is under the pointer, the hovered cell's breakdowns (asked of the
// gateway once per cell, window and layer, and kept), and the tooltip drawn from them (tooltip.js).

import { cellToLatLng } from 'h3-js';
import { ARC_LAYER_ID, HEX_LAYER_ID } from './layers.js';
import { provisionalCell } from './now.js';
import { cellTooltip, flowTooltip, renderTooltip } from './tooltip.js';

export const HOVER_BBOX_DEG = 1e-4; // a box this wide around a cell's centre holds that cell only (the gateway cuts by centre)
export const BREAKDOWNS_KEPT = 500;

const rowKey = (kind, r) => (kind === 'cell' ? r.hex : `${r.origin}>${r.dest}>${r.kind}`);

/** The bbox query value of a box around the centre of `hex`. */
function cellBox(hex) {
  const [lat, lng] = cellToLatLng(hex);
  return [lng - HOVER_BBOX_DEG, lat - HOVER_BBOX_DEG, lng + HOVER_BBOX_DEG, lat + HOVER_BBOX_DEG].join(',');
}

export class Hover {
  /** @param {object} screen the page (screen.js): its document, state, shown frame, api and loaded models. */
  constructor(screen) {
    this.screen = screen;
    this.current = null; // {kind: 'cell' | 'flow', object, x, y} under the pointer
    this.breakdowns = new Map(); // `${window}:${res}:${layer}:${hex}` -> {dimension: the cell's stats}, null while asked
  }

  /** A layer descriptor that reports the pointer to this tooltip. */
  withHover(d) {
    return { ...d, props: { ...d.props, onHover: (info) => this.onHover(d.props.id, info) } };
  }

  onHover(layerId, info) {
    const kind = layerId === HEX_LAYER_ID ? 'cell' : 'flow';
    if (!info.object) {
      if (this.current?.kind === kind) this.current = null;
    } else {
      const rect = this.screen.doc.getElementById('map').getBoundingClientRect();
      this.current = { kind, object: info.object, x: info.x + rect.left, y: info.y + rect.top };
      if (kind === 'cell') this.load(info.object.hex);
    }
    this.show();
  }

  clear() {
    this.current = null;
    this.show();
  }

  id(hex) {
    const f = this.screen.shownFrame();
    return `${f?.window_start_ms}:${f?.res}:${this.screen.state.layer}:${hex}`;
  }

  /** Ask for the breakdowns of `hex` in the shown window, one request per dimension of the layer shown. */
  load(hex) {
    const s = this.screen;
    const id = this.id(hex);
    const frame = s.shownFrame();
    if (!frame || this.breakdowns.has(id)) return;
    this.breakdowns.set(id, null); // asked for
    const [bbox, layer] = [cellBox(hex), s.state.layer];
    const part = (dim) => s.api(`frames/${frame.window_start_ms}?res=${frame.res}&layers=${layer}&breakdown=${dim}&bbox=${bbox}`, { auth: true })
      .then((f) => [dim, f.cells?.[hex] ?? {}])
      .catch(() => [dim, {}]);
    Promise.all(s.dimensionsOf(layer).map(part)).then((parts) => {
      this.breakdowns.set(id, Object.fromEntries(parts));
      if (this.breakdowns.size > BREAKDOWNS_KEPT) this.breakdowns.delete(this.breakdowns.keys().next().value);
      this.show();
    });
  }

  /** Forget a cell or arc the new window or layer no longer draws: deck.gl only picks again on a move. */
  dropUndrawn() {
    const h = this.current;
    if (!h) return;
    const drawn = this.screen.debug.layers.find((l) => l.id === (h.kind === 'cell' ? HEX_LAYER_ID : ARC_LAYER_ID));
    if (!drawn?.data.some((r) => rowKey(h.kind, r) === rowKey(h.kind, h.object))) this.current = null;
  }

  cellModel(hex) {
    const s = this.screen;
    if (!this.breakdowns.has(this.id(hex))) this.load(hex);
    const lineNames = Object.fromEntries([...s.city.metro_lines, ...(s.city.bus_lines ?? [])].map((l) => [l.id, l.name]));
    // the provisional value the map draws for this cell, if any (the same rule as now.mergeNow)
    const now = s.nowShown();
    const value = provisionalCell(now, hex);
    const frame = s.shownFrame();
    return cellTooltip({
      hex, frame, place: s.places.place(hex), metrics: s.metrics, layer: s.state.layer,
      provisional: value && { ...value, res: now.res },
      // breakdowns are asked of a final window: none before the first (provisional values only)
      breakdowns: this.breakdowns.get(this.id(hex)) ?? null, dimensions: frame ? s.dimensionsOf(s.state.layer) : [],
      categories: s.config.breakdowns, lineNames, k: s.privacyK(), dominanceShare: s.manifest?.dominance_share,
    });
  }

  model() {
    this.dropUndrawn();
    if (this.current?.kind === 'cell') return this.cellModel(this.current.object.hex);
    if (this.current?.kind === 'flow') return flowTooltip(this.current.object, this.screen.places);
    return null;
  }

  show() {
    const model = this.model();
    this.screen.debug.tooltip = model;
    renderTooltip(this.screen.doc.getElementById('tooltip'), model, this.current?.x, this.current?.y);
  }
}
