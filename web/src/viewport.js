// What the live feed is asked for, and when the view has moved far enough to ask again. Pure.

export const BBOX_PAD = 0.5; // subscribe to half a viewport around the view, so small pans need no resubscribe

/** [west, south, east, north] of a MapLibre map's view. */
export function viewOf(map) {
  const b = map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
}

/** `view` widened by BBOX_PAD of its size on every side, rounded to 1e-4 degrees. */
export function paddedBBox([w, s, e, n]) {
  const [dx, dy] = [(e - w) * BBOX_PAD, (n - s) * BBOX_PAD];
  return [w - dx, s - dy, e + dx, n + dy].map((v) => Math.round(v * 1e4) / 1e4);
}

/** Whether box `inner` lies within box `outer` (null: nothing subscribed yet). */
export const inside = (inner, outer) => Boolean(outer) && inner[0] >= outer[0] && inner[1] >= outer[1] && inner[2] <= outer[2] && inner[3] <= outer[3];

/**
 * The subscription for `state` ({res, bbox, breakdown, showFlows}): every layer the gateway offers
 * (`layers`, /api/v1/config), flows only while they are shown.
 */
export function subscriptionFor(layers, state) {
  const data = layers.filter((l) => l !== 'flows');
  const flows = state.showFlows && layers.includes('flows') ? ['flows'] : [];
  return { res: state.res, layers: [...data, ...flows], bbox: state.bbox, breakdown: state.breakdown };
}
