//! `GeoIndex`: where the idle drivers are, for k-nearest queries within a radius.
//!
//! A uniform grid over the plane: a hash map from square cell to the entries inside it, and a slot
//! per key. Moving a driver is O(1) (an in-place write, or a swap-remove and a push when it crosses
//! a cell), which is what a position stream of 100k updates a second needs; a k-nearest query
//! visits rings of cells around the query until the k-th best found is closer than anything the
//! next ring could hold. Coordinates are planar: course units, or metres from a
//! [`Projection`](crate::geo::Projection) for latitude/longitude. docs/ARCHITECTURE.md says why a
//! grid rather than H3 cells or an R-tree (docs/BENCHMARKS.md has the comparison).

use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::geo::Point;

type Cell = (i32, i32);

/// The smallest cell side accepted: keeps every cell index of a valid `Point` inside `i32`.
pub const MIN_CELL_SIZE: f64 = 0.001;

#[derive(Clone, Copy, Debug)]
struct Entry {
    x: f64,
    y: f64,
    slot: u32,
}

#[derive(Clone, Debug)]
struct Slot<K> {
    key: Option<K>,
    cell: Cell,
    /// Position of this slot's entry in its cell's vector.
    at: u32,
}

/// A neighbour found by [`GeoIndex::nearest`]: the slot (see [`GeoIndex::key`]) and its distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor {
    pub slot: u32,
    pub distance: f64,
}

#[derive(Clone, Debug)]
pub struct GeoIndex<K> {
    cell_size: f64,
    cells: FxHashMap<Cell, Vec<Entry>>,
    slots: Vec<Slot<K>>,
    free_slots: Vec<u32>,
    by_key: FxHashMap<K, u32>,
    /// Bounding box of every cell ever used: rings beyond it cannot hold anything.
    min_cell: Cell,
    max_cell: Cell,
}

impl<K: Hash + Eq + Clone> GeoIndex<K> {
    /// An empty index with square cells of side `cell_size` (clamped to at least
    /// [`MIN_CELL_SIZE`]). About one to a few entries per cell queries fastest.
    pub fn new(cell_size: f64) -> Self {
        let cell_size = if cell_size.is_finite() {
            cell_size.max(MIN_CELL_SIZE)
        } else {
            MIN_CELL_SIZE
        };
        Self {
            cell_size,
            cells: FxHashMap::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_key: FxHashMap::default(),
            min_cell: (i32::MAX, i32::MAX),
            max_cell: (i32::MIN, i32::MIN),
        }
    }

    /// A cell size giving about `per_cell` of `count` points spread over `area`.
    pub fn cell_size_for(area: f64, count: usize, per_cell: f64) -> f64 {
        (area * per_cell / count.max(1) as f64).sqrt()
    }

    pub fn cell_size(&self) -> f64 {
        self.cell_size
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// One past the largest slot number handed out: slots are `0..slot_bound()`, some free.
    pub fn slot_bound(&self) -> usize {
        self.slots.len()
    }

    fn cell_of(&self, x: f64, y: f64) -> Cell {
        (
            (x / self.cell_size).floor() as i32,
            (y / self.cell_size).floor() as i32,
        )
    }

    /// Inserts `key` at `at`, or moves it there; returns its slot (stable while it stays indexed).
    pub fn upsert(&mut self, key: K, at: Point) -> u32 {
        let (x, y) = (at.x(), at.y());
        let cell = self.cell_of(x, y);
        if let Some(&slot) = self.by_key.get(&key) {
            let current = &self.slots[slot as usize];
            if current.cell == cell {
                let entry = &mut self.cells.get_mut(&cell).expect("slot's cell exists")
                    [current.at as usize];
                entry.x = x;
                entry.y = y;
                return slot;
            }
            self.detach(slot);
            self.attach(slot, cell, x, y);
            return slot;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize].key = Some(key.clone());
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 entries");
                self.slots.push(Slot {
                    key: Some(key.clone()),
                    cell,
                    at: 0,
                });
                slot
            }
        };
        self.by_key.insert(key, slot);
        self.attach(slot, cell, x, y);
        slot
    }

    /// Removes `key`; returns whether it was indexed.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(slot) = self.by_key.remove(key) else {
            return false;
        };
        self.detach(slot);
        self.slots[slot as usize].key = None;
        self.free_slots.push(slot);
        true
    }

    pub fn slot_of(&self, key: &K) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// The key held in `slot`, if the slot is in use.
    pub fn key(&self, slot: u32) -> Option<&K> {
        self.slots.get(slot as usize).and_then(|s| s.key.as_ref())
    }

    /// Where the entry in `slot` is.
    pub fn position(&self, slot: u32) -> Option<Point> {
        let s = self.slots.get(slot as usize)?;
        s.key.as_ref()?;
        let e = self.cells.get(&s.cell)?.get(s.at as usize)?;
        Point::new(e.x, e.y).ok()
    }

    /// Every entry: (slot, key, position).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &K, Point)> + '_ {
        self.cells.values().flatten().filter_map(|e| {
            let key = self.slots[e.slot as usize].key.as_ref()?;
            Some((e.slot, key, Point::new(e.x, e.y).ok()?))
        })
    }

    fn attach(&mut self, slot: u32, cell: Cell, x: f64, y: f64) {
        let entries = self.cells.entry(cell).or_default();
        let at = u32::try_from(entries.len()).expect("fewer than 2^32 entries in a cell");
        entries.push(Entry { x, y, slot });
        let s = &mut self.slots[slot as usize];
        s.cell = cell;
        s.at = at;
        self.min_cell = (self.min_cell.0.min(cell.0), self.min_cell.1.min(cell.1));
        self.max_cell = (self.max_cell.0.max(cell.0), self.max_cell.1.max(cell.1));
    }

    fn detach(&mut self, slot: u32) {
        let Slot { cell, at, .. } = self.slots[slot as usize];
        let Some(entries) = self.cells.get_mut(&cell) else {
            return;
        };
        entries.swap_remove(at as usize);
        if let Some(moved) = entries.get(at as usize) {
            self.slots[moved.slot as usize].at = at;
        }
        if entries.is_empty() {
            self.cells.remove(&cell);
        }
    }

    /// The `k` nearest entries to `at` no farther than `max_distance` for which `accept(slot)`
    /// holds, nearest first (ties by slot), written to `out` (cleared first).
    pub fn nearest(
        &self,
        at: Point,
        k: usize,
        max_distance: f64,
        mut accept: impl FnMut(u32) -> bool,
        out: &mut Vec<Neighbor>,
    ) {
        out.clear();
        if k == 0 || self.is_empty() {
            return;
        }
        let (x, y) = (at.x(), at.y());
        let (cx, cy) = self.cell_of(x, y);
        let worst = |out: &Vec<Neighbor>| {
            if out.len() < k {
                max_distance
            } else {
                out[k - 1].distance
            }
        };
        // Compared squared; the distance is computed only for entries that make the list.
        let mut consider = |entries: &[Entry], out: &mut Vec<Neighbor>| {
            let mut bound = worst(out).powi(2);
            for e in entries {
                let (dx, dy) = (e.x - x, e.y - y);
                let squared = dx * dx + dy * dy;
                if squared > bound {
                    continue;
                }
                if !accept(e.slot) {
                    continue;
                }
                // √(dx² + dy²): within a unit in the last place of `Point::distance_to`'s
                // `hypot`, several times cheaper (`assign` reports its pairs with `hypot`).
                let n = Neighbor {
                    slot: e.slot,
                    distance: squared.sqrt(),
                };
                let pos = out.partition_point(|o| {
                    o.distance
                        .total_cmp(&n.distance)
                        .then(o.slot.cmp(&n.slot))
                        .is_lt()
                });
                out.insert(pos, n);
                out.truncate(k);
                bound = worst(out).powi(2);
            }
        };
        // Rings up to the farthest occupied cell in any direction.
        let reach = [
            cx.saturating_sub(self.min_cell.0),
            self.max_cell.0.saturating_sub(cx),
            cy.saturating_sub(self.min_cell.1),
            self.max_cell.1.saturating_sub(cy),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(0);
        let mut visited_cells = 0_usize;
        for ring in 0..=reach {
            // Far rings of a sparse grid are mostly empty cells: once walking them would cost more
            // than looking at every occupied cell, look at those instead (the ones not yet seen).
            let ring_cells = if ring == 0 { 1 } else { 8 * ring as usize };
            if visited_cells + ring_cells > 2 * self.cells.len() + 8 {
                for (cell, entries) in &self.cells {
                    let chebyshev = (i64::from(cell.0) - i64::from(cx))
                        .abs()
                        .max((i64::from(cell.1) - i64::from(cy)).abs());
                    if chebyshev >= i64::from(ring) {
                        consider(entries, out);
                    }
                }
                break;
            }
            visited_cells += ring_cells;
            if ring > 0 {
                // Everything in this ring lies outside the block of the previous rings, so it is
                // at least as far as that block's nearest edge.
                let inner = ring - 1;
                let cs = self.cell_size;
                let lower = [
                    x - f64::from(cx - inner) * cs,
                    f64::from(cx + inner + 1) * cs - x,
                    y - f64::from(cy - inner) * cs,
                    f64::from(cy + inner + 1) * cs - y,
                ]
                .into_iter()
                .fold(f64::INFINITY, f64::min);
                if lower > worst(out) {
                    break;
                }
            }
            for_each_ring_cell((cx, cy), ring, |cell| {
                if let Some(entries) = self.cells.get(&cell) {
                    consider(entries, out);
                }
            });
        }
    }
}

impl GeoIndex<u32> {
    /// An index of `points` keyed by their position in the slice.
    pub fn from_points(points: &[Point], cell_size: f64) -> Self {
        let mut index = Self::new(cell_size);
        for (i, p) in points.iter().enumerate() {
            index.upsert(u32::try_from(i).expect("fewer than 2^32 points"), *p);
        }
        index
    }
}

impl<K> GeoIndex<K> {
    /// Calls `visit(slot, distance)` for every entry no farther than `radius` from `at`, in no
    /// particular order.
    pub fn for_each_within(&self, at: Point, radius: f64, mut visit: impl FnMut(u32, f64)) {
        if self.cells.is_empty() || radius.is_nan() || radius < 0.0 {
            return;
        }
        let (x, y) = (at.x(), at.y());
        let mut scan = |entries: &[Entry]| {
            let bound = radius * radius;
            for e in entries {
                let (dx, dy) = (e.x - x, e.y - y);
                let squared = dx * dx + dy * dy;
                if squared <= bound {
                    visit(e.slot, squared.sqrt());
                }
            }
        };
        let span = |lo: f64, hi: f64| {
            let a = (lo / self.cell_size).floor().max(f64::from(i32::MIN)) as i64;
            let b = (hi / self.cell_size).floor().min(f64::from(i32::MAX)) as i64;
            (a, b)
        };
        let (x0, x1) = span(x - radius, x + radius);
        let (y0, y1) = span(y - radius, y + radius);
        let (x0, x1) = (
            x0.max(i64::from(self.min_cell.0)),
            x1.min(i64::from(self.max_cell.0)),
        );
        let (y0, y1) = (
            y0.max(i64::from(self.min_cell.1)),
            y1.min(i64::from(self.max_cell.1)),
        );
        if x0 > x1 || y0 > y1 {
            return;
        }
        let block = (x1 - x0 + 1).saturating_mul(y1 - y0 + 1);
        if block > 2 * self.cells.len() as i64 {
            // Sparser than the block is wide: look at the occupied cells instead.
            for (cell, entries) in &self.cells {
                if (x0..=x1).contains(&i64::from(cell.0)) && (y0..=y1).contains(&i64::from(cell.1))
                {
                    scan(entries);
                }
            }
            return;
        }
        for cx in x0..=x1 {
            for cy in y0..=y1 {
                // In range of i32: clamped to the occupied cells' bounds above.
                if let Some(entries) = self.cells.get(&(cx as i32, cy as i32)) {
                    scan(entries);
                }
            }
        }
    }
}

/// Calls `visit` on every cell at Chebyshev distance exactly `ring` from `centre`.
fn for_each_ring_cell(centre: Cell, ring: i32, mut visit: impl FnMut(Cell)) {
    let (cx, cy) = centre;
    if ring == 0 {
        visit(centre);
        return;
    }
    for dx in -ring..=ring {
        visit((cx.saturating_add(dx), cy.saturating_sub(ring)));
        visit((cx.saturating_add(dx), cy.saturating_add(ring)));
    }
    for dy in (-ring + 1)..ring {
        visit((cx.saturating_sub(ring), cy.saturating_add(dy)));
        visit((cx.saturating_add(ring), cy.saturating_add(dy)));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{prop, prop_assert, prop_assert_eq, proptest};

    use super::*;

    fn pt(x: f64, y: f64) -> Point {
        Point::new(x, y).expect("valid")
    }

    fn brute(points: &[(u32, Point)], at: Point, k: usize, radius: f64) -> Vec<(u32, f64)> {
        let mut all: Vec<(u32, f64)> = points
            .iter()
            // The index measures √(dx² + dy²) (not `hypot`, which can differ in the last bit).
            .map(|(key, p)| {
                let (dx, dy) = (p.x() - at.x(), p.y() - at.y());
                (*key, (dx * dx + dy * dy).sqrt())
            })
            .filter(|(_, d)| *d <= radius)
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    #[test]
    fn moves_and_removals_are_seen_by_queries() {
        let mut index = GeoIndex::new(10.0);
        index.upsert("a", pt(0.0, 0.0));
        index.upsert("b", pt(50.0, 0.0));
        let mut out = Vec::new();
        index.nearest(pt(49.0, 0.0), 1, f64::INFINITY, |_| true, &mut out);
        assert_eq!(index.key(out[0].slot), Some(&"b"));
        index.upsert("a", pt(48.5, 0.0)); // crosses cells
        index.nearest(pt(49.0, 0.0), 1, f64::INFINITY, |_| true, &mut out);
        assert_eq!(index.key(out[0].slot), Some(&"a"));
        assert!(index.remove(&"a"));
        assert!(!index.remove(&"a"));
        index.nearest(pt(49.0, 0.0), 5, f64::INFINITY, |_| true, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(index.len(), 1);
        index.nearest(pt(49.0, 0.0), 5, 0.5, |_| true, &mut out);
        assert!(out.is_empty(), "the radius bounds the search");
        let b = index.slot_of(&"b").expect("indexed");
        index.nearest(pt(49.0, 0.0), 5, 100.0, |slot| slot != b, &mut out);
        assert!(out.is_empty(), "rejected entries are skipped");
        // A freed slot is reused, and the reused slot answers for its new key.
        let c = index.upsert("c", pt(-500.0, -500.0));
        assert_eq!(index.key(c), Some(&"c"));
        assert_eq!(index.position(c), Some(pt(-500.0, -500.0)));
        index.nearest(pt(1000.0, 1000.0), 2, f64::INFINITY, |_| true, &mut out);
        assert_eq!(out.len(), 2, "far queries reach every occupied cell");
    }

    proptest! {
        #[test]
        fn nearest_matches_brute_force(
            points in prop::collection::vec((-300.0..300.0_f64, -300.0..300.0_f64), 0..120),
            moves in prop::collection::vec((0usize..120, -300.0..300.0_f64, -300.0..300.0_f64), 0..40),
            removals in prop::collection::vec(0usize..120, 0..30),
            queries in prop::collection::vec((-400.0..400.0_f64, -400.0..400.0_f64), 1..10),
            k in 1usize..12,
            radius in prop::sample::select(vec![15.0, 80.0, f64::INFINITY]),
            cell in prop::sample::select(vec![0.5, 7.0, 40.0, 1000.0]),
        ) {
            let mut index = GeoIndex::new(cell);
            let mut truth: Vec<(u32, Point)> = Vec::new();
            for (key, (x, y)) in points.iter().enumerate() {
                let key = key as u32;
                index.upsert(key, pt(*x, *y));
                truth.push((key, pt(*x, *y)));
            }
            for (key, x, y) in moves {
                if let Some(entry) = truth.iter_mut().find(|(k, _)| *k as usize == key) {
                    entry.1 = pt(x, y);
                    index.upsert(entry.0, pt(x, y));
                }
            }
            for key in removals {
                index.remove(&(key as u32));
                truth.retain(|(k, _)| *k as usize != key);
            }
            prop_assert_eq!(index.len(), truth.len());
            let mut out = Vec::new();
            for (x, y) in queries {
                let at = pt(x, y);
                index.nearest(at, k, radius, |_| true, &mut out);
                let found: Vec<f64> = out.iter().map(|n| n.distance).collect();
                let expected: Vec<f64> = brute(&truth, at, k, radius).iter().map(|e| e.1).collect();
                prop_assert_eq!(found, expected);
                let mut within: Vec<f64> = Vec::new();
                index.for_each_within(at, radius.min(120.0), |_, d| within.push(d));
                within.sort_by(f64::total_cmp);
                let expected: Vec<f64> = brute(&truth, at, usize::MAX, radius.min(120.0)).iter().map(|e| e.1).collect();
                prop_assert_eq!(within, expected);
                for n in &out {
                    let key = *index.key(n.slot).expect("live slot");
                    let p = truth.iter().find(|(k, _)| *k == key).expect("indexed").1;
                    let exact = at.distance_to(&p);
                    prop_assert!((exact - n.distance).abs() <= 4.0 * f64::EPSILON * exact, "{} vs {}", n.distance, exact);
                }
            }
        }
    }
}
