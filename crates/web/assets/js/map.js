// A Leaflet map on the deployment's base layer: its tile server (`web.tile_url`) when one is set,
// otherwise the Dhaka outline and main roads shipped with Rickshaw, so the pages work offline.
/* global L */

let configPromise = null;

export function siteConfig() {
  configPromise = configPromise || fetch("/app/config.json").then((r) => r.json());
  return configPromise;
}

const OFFLINE_ATTRIBUTION =
  '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors (ODbL) | Boundaries: OCHA/HDX COD-AB, BBS';

export async function createMap(element, options = {}) {
  const config = await siteConfig();
  const map = L.map(element, { zoomControl: true, preferCanvas: Boolean(options.canvas) });
  map.setView(config.centre, config.zoom);
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { maxZoom: 19, attribution: config.tile_attribution }).addTo(map);
  } else {
    element.classList.add("offline-map");
    const base = await fetch("/app/map/dhaka.geojson").then((r) => r.json());
    L.geoJSON(base, {
      attribution: OFFLINE_ATTRIBUTION,
      interactive: false,
      style: (feature) => {
        const kind = feature.properties.kind;
        if (kind === "outline") return { color: "#7a8ba6", weight: 1.5, fillColor: "#e9eef5", fillOpacity: 0.6 };
        const major = /motorway|trunk/.test(feature.properties.highway || "");
        return { color: major ? "#d99a3e" : "#b8c0cc", weight: major ? 3 : 1.6, opacity: 0.95 };
      },
    }).addTo(map);
  }
  return map;
}

/// A round marker (vector: no image, no inline style), drawn the same on SVG and canvas.
export function dot(at, { color, fill, radius = 8, className = "" } = {}) {
  return L.circleMarker(at, { radius, className, color: color || "#1f2937", fillColor: fill || color, weight: 2, fillOpacity: 0.9 });
}
