//! `FrozenGrid`: a snapshot of points for one tick's many k-nearest queries.
//!
//! [`GeoIndex`](super::GeoIndex) is built for a position stream: a hash map of cells, each its own
//! vector, so a driver moves in O(1). A tick instead asks tens of thousands of k-nearest questions
//! of the same points, and there a hash lookup per cell and a pointer chase per cell's vector are
//! most of a query. This grid is a dense array of cells over the points' bounding box with the
//! points sorted by cell (compressed sparse rows, the coordinates in arrays of their own), built
//! in O(n) by a counting sort. Points can be removed (the greedy pass takes drivers as it goes):
//! each cell keeps its live points first, so a removal is a swap within its cell.

use super::index::Neighbor;
use crate::geo::Point;

const NONE: u32 = u32::MAX;

/// The `k` best points offered so far: the smallest squared distances, ties by id.
struct Best {
    k: usize,
    squared: Vec<f64>,
    ids: Vec<u32>,
    /// Offers farther than this are refused: the radius, then the k-th best.
    bound: f64,
}

impl Best {
    fn new(k: usize) -> Self {
        Self {
            k,
            squared: Vec::with_capacity(k),
            ids: Vec::with_capacity(k),
            bound: f64::INFINITY,
        }
    }

    fn reset(&mut self, max_squared: f64) {
        self.squared.clear();
        self.ids.clear();
        self.bound = max_squared;
    }

    fn is_full(&self) -> bool {
        self.squared.len() == self.k
    }

    #[inline(always)]
    fn offer(&mut self, squared: f64, id: u32) {
        if squared <= self.bound {
            self.insert(squared, id);
        }
    }

    #[inline(never)]
    fn insert(&mut self, squared: f64, id: u32) {
        let len = self.squared.len();
        let mut at = len;
        while at > 0
            && (self.squared[at - 1] > squared
                || (self.squared[at - 1] == squared && self.ids[at - 1] > id))
        {
            at -= 1;
        }
        if at >= self.k {
            return;
        }
        if len < self.k {
            self.squared.push(squared);
            self.ids.push(id);
        }
        let last = self.squared.len() - 1;
        for i in (at..last).rev() {
            self.squared[i + 1] = self.squared[i];
            self.ids[i + 1] = self.ids[i];
        }
        self.squared[at] = squared;
        self.ids[at] = id;
        if self.is_full() {
            self.bound = self.squared[last];
        }
    }

    /// The best, nearest first, with their distances.
    fn write_to(&self, out: &mut Vec<Neighbor>) {
        out.clear();
        out.extend(
            self.squared
                .iter()
                .zip(&self.ids)
                .map(|(&squared, &slot)| Neighbor {
                    slot,
                    distance: squared.sqrt(),
                }),
        );
    }
}

/// At most this many cells a point: a grid over a sparse, spread-out city grows its cells instead.
const CELLS_PER_POINT: f64 = 4.0;

/// Queries grouped for [`FrozenGrid::nearest_each`]: those outside the grid in the order given,
/// and those inside by cell, cell `c`'s being `inside[starts[c]..starts[c + 1]]`.
struct ByCell {
    outside: Vec<(u32, Point)>,
    inside: Vec<(u32, Point)>,
    starts: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct FrozenGrid {
    cell_size: f64,
    /// The lower-left corner of cell (0, 0).
    origin: (f64, f64),
    width: i64,
    height: i64,
    /// Cell `c`'s points are `starts[c]..ends[c]` of the point arrays (row-major cells).
    starts: Vec<u32>,
    ends: Vec<u32>,
    xs: Vec<f64>,
    ys: Vec<f64>,
    ids: Vec<u32>,
    /// Where each id's point is in the arrays (`NONE`: not in the grid).
    place: Vec<u32>,
    live: usize,
}

impl FrozenGrid {
    /// A grid of `points` (`(id, position)`, ids distinct, usually below `id_bound`: the table of
    /// where each id is grows past it if one is not) with cells of about
    /// `cell_size` (larger where the points are few for their bounding box).
    pub fn new(
        points: impl IntoIterator<Item = (u32, Point)>,
        id_bound: usize,
        cell_size: f64,
    ) -> Self {
        let points: Vec<(u32, Point)> = points.into_iter().collect();
        let (mut lo, mut hi) = (
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, f64::NEG_INFINITY),
        );
        for (_, p) in &points {
            lo = (lo.0.min(p.x()), lo.1.min(p.y()));
            hi = (hi.0.max(p.x()), hi.1.max(p.y()));
        }
        if points.is_empty() {
            (lo, hi) = ((0.0, 0.0), (0.0, 0.0));
        }
        let mut cell_size = if cell_size.is_finite() && cell_size > 0.0 {
            cell_size
        } else {
            1.0
        };
        let span = (hi.0 - lo.0, hi.1 - lo.1);
        let max_cells = CELLS_PER_POINT * points.len().max(1) as f64 + 64.0;
        let cells_for =
            |size: f64| ((span.0 / size).floor() + 1.0) * ((span.1 / size).floor() + 1.0);
        while cells_for(cell_size) > max_cells {
            cell_size *= (cells_for(cell_size) / max_cells).sqrt().max(1.25);
        }
        let width = (span.0 / cell_size).floor() as i64 + 1;
        let height = (span.1 / cell_size).floor() as i64 + 1;
        let mut grid = Self {
            cell_size,
            origin: lo,
            width,
            height,
            starts: vec![0; (width * height) as usize + 1],
            ends: Vec::new(),
            xs: vec![0.0; points.len()],
            ys: vec![0.0; points.len()],
            ids: vec![NONE; points.len()],
            place: vec![
                NONE;
                points
                    .iter()
                    .map(|(id, _)| *id as usize + 1)
                    .max()
                    .unwrap_or(0)
                    .max(id_bound)
            ],
            live: points.len(),
        };
        let cells: Vec<u32> = points
            .iter()
            .map(|(_, p)| {
                let (cx, cy) = grid.cell_of(p.x(), p.y());
                // Inside the bounding box, so inside the grid.
                u32::try_from(cy * width + cx).expect("fewer than 2^32 cells")
            })
            .collect();
        for &c in &cells {
            grid.starts[c as usize + 1] += 1;
        }
        for c in 0..grid.starts.len() - 1 {
            grid.starts[c + 1] += grid.starts[c];
        }
        let mut next = grid.starts.clone();
        for ((id, p), &c) in points.iter().zip(&cells) {
            let at = next[c as usize];
            next[c as usize] += 1;
            let i = at as usize;
            (grid.xs[i], grid.ys[i], grid.ids[i]) = (p.x(), p.y(), *id);
            grid.place[*id as usize] = at;
        }
        grid.ends = grid.starts[1..].to_vec();
        grid
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The cell holding `(x, y)`, in cells from the origin (outside the grid for points outside
    /// the bounding box).
    fn cell_of(&self, x: f64, y: f64) -> (i64, i64) {
        (
            ((x - self.origin.0) / self.cell_size).floor() as i64,
            ((y - self.origin.1) / self.cell_size).floor() as i64,
        )
    }

    /// Every live point: `(id, position)`, cell by cell (nearby points together).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Point)> + '_ {
        (0..self.ends.len()).flat_map(move |c| {
            (self.starts[c] as usize..self.ends[c] as usize)
                .filter_map(move |i| Some((self.ids[i], Point::new(self.xs[i], self.ys[i]).ok()?)))
        })
    }

    /// Takes `id` out of the grid; returns whether it was in it.
    pub fn remove(&mut self, id: u32) -> bool {
        let Some(&at) = self.place.get(id as usize) else {
            return false;
        };
        if at == NONE {
            return false;
        }
        let i = at as usize;
        let (cx, cy) = self.cell_of(self.xs[i], self.ys[i]);
        let c = (cy * self.width + cx) as usize;
        let last = self.ends[c] as usize - 1;
        self.xs.swap(i, last);
        self.ys.swap(i, last);
        self.ids.swap(i, last);
        self.place[self.ids[i] as usize] = at;
        self.place[id as usize] = NONE;
        self.ends[c] -= 1;
        self.live -= 1;
        true
    }

    /// `queries` in the order [`FrozenGrid::nearest_each`] answers them: those outside the grid
    /// first, then cell by cell, each in the order given. A run of the result answered on its own
    /// is answered in the same order as within the whole (a tick's threads split it so).
    pub fn in_query_order(
        &self,
        queries: impl IntoIterator<Item = (u32, Point)>,
    ) -> Vec<(u32, Point)> {
        let ByCell {
            mut outside,
            inside,
            ..
        } = self.by_cell(queries);
        outside.extend(inside);
        outside
    }

    /// `queries` split into those outside the grid (in the order given) and those inside, sorted
    /// by cell (a counting sort, stable).
    fn by_cell(&self, queries: impl IntoIterator<Item = (u32, Point)>) -> ByCell {
        let mut outside = Vec::new();
        let mut unsorted: Vec<(usize, u32, Point)> = Vec::new();
        for (id, at) in queries {
            let (cx, cy) = self.cell_of(at.x(), at.y());
            if (0..self.width).contains(&cx) && (0..self.height).contains(&cy) {
                unsorted.push(((cy * self.width + cx) as usize, id, at));
            } else {
                outside.push((id, at));
            }
        }
        let cells = self.ends.len();
        let mut starts = vec![0_usize; cells + 1];
        for &(c, _, _) in &unsorted {
            starts[c + 1] += 1;
        }
        for c in 0..cells {
            starts[c + 1] += starts[c];
        }
        let mut next = starts.clone();
        let mut at_of = vec![0_usize; unsorted.len()];
        for (i, &(c, _, _)) in unsorted.iter().enumerate() {
            at_of[next[c]] = i;
            next[c] += 1;
        }
        let inside = at_of
            .into_iter()
            .map(|i| (unsorted[i].1, unsorted[i].2))
            .collect();
        ByCell {
            outside,
            inside,
            starts,
        }
    }

    /// [`FrozenGrid::nearest`] for every query, calling `visit(query id, neighbours)`, cell by
    /// cell. The queries of a cell share one look at the 3 × 3 block of cells around it, copied
    /// together so their distances are measured in one tight loop; a query whose k-th neighbour
    /// could lie beyond the block (or that lies outside the grid) asks [`FrozenGrid::nearest`].
    pub fn nearest_each(
        &self,
        queries: impl IntoIterator<Item = (u32, Point)>,
        k: usize,
        max_distance: f64,
        mut visit: impl FnMut(u32, &[Neighbor]),
    ) {
        let cells = self.ends.len();
        let mut found = Vec::with_capacity(k);
        let ByCell {
            outside,
            inside,
            starts,
        } = self.by_cell(queries);
        for &(id, at) in &outside {
            self.nearest(at, k, max_distance, &mut found);
            visit(id, &found);
        }
        if k == 0 || self.live == 0 || max_distance.is_nan() || max_distance < 0.0 {
            for &(id, _) in &inside {
                visit(id, &[]);
            }
            return;
        }
        let max_squared = max_distance * max_distance;
        let mut best = Best::new(k);
        let (mut bx, mut by, mut bid, mut distance) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for c in 0..cells {
            let queries = &inside[starts[c]..starts[c + 1]];
            if queries.is_empty() {
                continue;
            }
            let (cx, cy) = (c as i64 % self.width, c as i64 / self.width);
            bx.clear();
            by.clear();
            bid.clear();
            let (x0, x1) = ((cx - 1).max(0), (cx + 1).min(self.width - 1));
            let (y0, y1) = ((cy - 1).max(0), (cy + 1).min(self.height - 1));
            // The query's own cell first: its points are the likeliest answers, so the bound
            // tightens early and fewer of the rest are inserted.
            let block = (y0..=y1).flat_map(|row| (row * self.width + x0)..=(row * self.width + x1));
            for cell in std::iter::once(c as i64).chain(block.filter(|&cell| cell != c as i64)) {
                let range = self.starts[cell as usize] as usize..self.ends[cell as usize] as usize;
                bx.extend_from_slice(&self.xs[range.clone()]);
                by.extend_from_slice(&self.ys[range.clone()]);
                bid.extend_from_slice(&self.ids[range]);
            }
            // How far a query may look and still be sure the block holds its answer: the
            // block's edges, except where the block meets the grid's (nothing lies beyond).
            let cs = self.cell_size;
            let (ox, oy) = self.origin;
            let edge = |inside: bool, at: f64, beyond: f64| if inside { at } else { beyond };
            let (left, right) = (
                edge(x0 == cx - 1, ox + x0 as f64 * cs, f64::NEG_INFINITY),
                edge(x1 == cx + 1, ox + (x1 + 1) as f64 * cs, f64::INFINITY),
            );
            let (bottom, top) = (
                edge(y0 == cy - 1, oy + y0 as f64 * cs, f64::NEG_INFINITY),
                edge(y1 == cy + 1, oy + (y1 + 1) as f64 * cs, f64::INFINITY),
            );
            distance.resize(bx.len(), 0.0);
            for &(id, at) in queries {
                let (x, y) = (at.x(), at.y());
                let margin = (x - left).min(right - x).min(y - bottom).min(top - y);
                for ((d, px), py) in distance.iter_mut().zip(&bx).zip(&by) {
                    let (dx, dy) = (px - x, py - y);
                    *d = dx * dx + dy * dy;
                }
                best.reset(max_squared);
                for (&squared, &id) in distance.iter().zip(&bid) {
                    best.offer(squared, id);
                }
                let reach = if best.is_full() {
                    best.bound
                } else {
                    max_squared
                };
                if reach >= margin * margin {
                    self.nearest(at, k, max_distance, &mut found);
                } else {
                    best.write_to(&mut found);
                }
                visit(id, &found);
            }
        }
    }

    /// The `k` nearest live points to `at` no farther than `max_distance`, nearest first (ties by
    /// id), written to `out` (cleared first): as [`GeoIndex::nearest`](super::GeoIndex::nearest),
    /// with the same distances (√(dx² + dy²)).
    pub fn nearest(&self, at: Point, k: usize, max_distance: f64, out: &mut Vec<Neighbor>) {
        self.nearest_where(at, k, max_distance, |_| true, out);
    }

    /// [`FrozenGrid::nearest`] among the points for whose id `accept` holds.
    pub fn nearest_where(
        &self,
        at: Point,
        k: usize,
        max_distance: f64,
        mut accept: impl FnMut(u32) -> bool,
        out: &mut Vec<Neighbor>,
    ) {
        out.clear();
        if k == 0 || self.live == 0 || max_distance.is_nan() || max_distance < 0.0 {
            return;
        }
        let (x, y) = (at.x(), at.y());
        let (cx, cy) = self.cell_of(x, y);
        let mut best = Best::new(k);
        best.reset(max_distance * max_distance);
        let mut consider = |range: std::ops::Range<usize>, best: &mut Best| {
            for i in range {
                let (dx, dy) = (self.xs[i] - x, self.ys[i] - y);
                let squared = dx * dx + dy * dy;
                if squared <= best.bound && accept(self.ids[i]) {
                    best.insert(squared, self.ids[i]);
                }
            }
        };
        // Rings of cells around the query's, from the first that meets the grid, until the next
        // ring lies farther than the k-th found (or than the radius).
        let outside = [-cx, cx - (self.width - 1), -cy, cy - (self.height - 1)]
            .into_iter()
            .max()
            .unwrap_or(0)
            .max(0);
        let reach = [cx, self.width - 1 - cx, cy, self.height - 1 - cy]
            .into_iter()
            .map(i64::abs)
            .max()
            .unwrap_or(0)
            .max(outside);
        for ring in outside..=reach {
            if ring > 0 {
                // Everything in this ring lies outside the block of the previous rings.
                let inner = ring - 1;
                let cs = self.cell_size;
                let (ox, oy) = self.origin;
                let lower = [
                    x - (ox + (cx - inner) as f64 * cs),
                    ox + (cx + inner + 1) as f64 * cs - x,
                    y - (oy + (cy - inner) as f64 * cs),
                    oy + (cy + inner + 1) as f64 * cs - y,
                ]
                .into_iter()
                .fold(f64::INFINITY, f64::min);
                if lower > 0.0 && lower * lower > best.bound {
                    break;
                }
            }
            let (x0, x1) = ((cx - ring).max(0), (cx + ring).min(self.width - 1));
            // The ring's bottom and top rows, whole, then its two sides between them.
            for row in [cy - ring, cy + ring] {
                if (0..self.height).contains(&row) && x0 <= x1 {
                    let base = row * self.width;
                    for c in (base + x0)..=(base + x1) {
                        let c = c as usize;
                        consider(self.starts[c] as usize..self.ends[c] as usize, &mut best);
                    }
                }
                if ring == 0 {
                    break;
                }
            }
            for column in [cx - ring, cx + ring] {
                if ring == 0 || !(0..self.width).contains(&column) {
                    continue;
                }
                let (y0, y1) = ((cy - ring + 1).max(0), (cy + ring - 1).min(self.height - 1));
                for row in y0..=y1 {
                    let c = (row * self.width + column) as usize;
                    consider(self.starts[c] as usize..self.ends[c] as usize, &mut best);
                }
            }
        }
        best.write_to(out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{prop, prop_assert_eq, proptest};

    use super::*;
    use crate::matching::GeoIndex;

    fn pt(x: f64, y: f64) -> Point {
        Point::new(x, y).expect("valid")
    }

    proptest! {
        /// The same answers as the live index, before and after removals.
        #[test]
        fn answers_as_the_index_does(
            points in prop::collection::vec((-300.0..300.0_f64, -300.0..300.0_f64), 0..150),
            removals in prop::collection::vec(0u32..150, 0..60),
            queries in prop::collection::vec((-700.0..700.0_f64, -700.0..700.0_f64), 1..40),
            k in 1usize..12,
            radius in prop::sample::select(vec![0.0, 15.0, 80.0, f64::INFINITY]),
            cell in prop::sample::select(vec![0.01, 0.5, 7.0, 40.0, 1000.0]),
        ) {
            let mut index = GeoIndex::new(cell);
            for (key, (x, y)) in points.iter().enumerate() {
                index.upsert(key as u32, pt(*x, *y));
            }
            let mut grid = FrozenGrid::new(
                index.iter().map(|(slot, _, at)| (slot, at)),
                index.slot_bound(),
                cell,
            );
            for key in removals {
                let slot = index.slot_of(&key);
                prop_assert_eq!(grid.remove(key), slot.is_some());
                if slot.is_some() {
                    index.remove(&key);
                }
                prop_assert_eq!(grid.len(), index.len());
            }
            let mut listed: Vec<u32> = grid.iter().map(|(id, _)| id).collect();
            listed.sort_unstable();
            let mut expected: Vec<u32> = index.iter().map(|(slot, _, _)| slot).collect();
            expected.sort_unstable();
            prop_assert_eq!(listed, expected);
            let (mut found, mut truth) = (Vec::new(), Vec::new());
            for &(x, y) in &queries {
                grid.nearest(pt(x, y), k, radius, &mut found);
                index.nearest(pt(x, y), k, radius, |_| true, &mut truth);
                prop_assert_eq!(&found, &truth);
            }
            let mut each = Vec::new();
            grid.nearest_each(queries.iter().enumerate().map(|(i, (x, y))| (i as u32, pt(*x, *y))), k, radius, |i, found| each.push((i, found.to_vec())));
            prop_assert_eq!(each.len(), queries.len());
            for (i, found) in each {
                let (x, y) = queries[i as usize];
                index.nearest(pt(x, y), k, radius, |_| true, &mut truth);
                prop_assert_eq!(&found, &truth);
            }
        }
    }

    #[test]
    fn an_id_past_the_bound_still_finds_its_place() {
        let mut grid = FrozenGrid::new([(7, pt(1.0, 1.0)), (2, pt(2.0, 2.0))], 3, 1.0);
        assert!(grid.remove(7));
        let mut out = Vec::new();
        grid.nearest(pt(1.0, 1.0), 2, f64::INFINITY, &mut out);
        assert_eq!(out.iter().map(|n| n.slot).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_spread_out_set_gets_larger_cells_not_millions() {
        let grid = FrozenGrid::new([(0, pt(-900_000.0, 0.0)), (1, pt(900_000.0, 5.0))], 2, 1.0);
        assert!(grid.starts.len() < 200, "{} cells", grid.starts.len());
        let mut out = Vec::new();
        grid.nearest(pt(0.0, 0.0), 2, f64::INFINITY, &mut out);
        assert_eq!(out.iter().map(|n| n.slot).collect::<Vec<_>>(), [0, 1]);
    }
}
