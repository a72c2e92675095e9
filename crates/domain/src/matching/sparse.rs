//! Minimum-cost assignment on a sparse candidate graph, with a cost for leaving a row unmatched.
//!
//! Rows are riders, columns are drivers, and each row lists only its candidate columns (its k
//! nearest drivers within the pickup radius). Every row also has a private "unmatched" column of
//! cost `unmatched_cost`, so a rider with no driver nearby simply takes it and never blocks
//! others, and every augmenting search stops once it is more expensive than leaving the row out.
//!
//! The method is successive shortest augmenting paths with column prices — the augmentation phase
//! of Jonker–Volgenant (LAPJVsp) on adjacency lists, searched with a binary heap. For each row
//! in turn it runs Dijkstra over reduced costs `cost - price` from that row until it settles a
//! free column, lowers the prices of the settled columns and flips the path. The result is exact
//! for the graph it is given (the property tests check it against the dense solver); what the
//! sparse graph leaves out is the only source of error, and [`super::assign`] measures it.
//!
//! A rider left waiting is worse than a longer pickup, so a second pass
//! ([`SparseAssignment::serve_the_rest`]) then serves every rider the graph can still serve,
//! at the least extra cost: the most riders first, then the shortest total.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

const NONE: u32 = u32::MAX;

/// Rows' candidate edges, `(column, cost)`, in adjacency lists that can grow between solves.
#[derive(Clone, Debug, Default)]
pub struct CandidateGraph {
    /// `rows[r] = (start, len)` into `edges`.
    rows: Vec<(u32, u32)>,
    edges: Vec<(u32, f64)>,
}

impl CandidateGraph {
    pub fn with_capacity(rows: usize, edges: usize) -> Self {
        Self {
            rows: Vec::with_capacity(rows),
            edges: Vec::with_capacity(edges),
        }
    }

    /// Appends a row with these edges; returns its number. Costs must be finite.
    pub fn push_row(&mut self, edges: impl IntoIterator<Item = (u32, f64)>) -> usize {
        let start = self.edges.len();
        self.edges.extend(edges);
        let len = self.edges.len() - start;
        self.rows.push((to_u32(start), to_u32(len)));
        self.rows.len() - 1
    }

    /// Gives `row` these extra edges (columns it already has are skipped).
    pub fn extend_row(&mut self, row: usize, extra: impl IntoIterator<Item = (u32, f64)>) {
        let (start, len) = self.rows[row];
        let (start, len) = (start as usize, len as usize);
        let new_start = self.edges.len();
        self.edges.extend_from_within(start..start + len);
        for (col, cost) in extra {
            if !self.edges[new_start..].iter().any(|(c, _)| *c == col) {
                self.edges.push((col, cost));
            }
        }
        self.rows[row] = (to_u32(new_start), to_u32(self.edges.len() - new_start));
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    pub fn edge_count(&self) -> usize {
        self.rows.iter().map(|(_, len)| *len as usize).sum()
    }

    pub fn row(&self, row: usize) -> &[(u32, f64)] {
        let (start, len) = self.rows[row];
        &self.edges[start as usize..(start + len) as usize]
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2^32 rows, columns and edges")
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Queued {
    distance: f64,
    column: u32,
}

impl Eq for Queued {}

impl Ord for Queued {
    // Reversed: `BinaryHeap` is a max-heap and the search wants the nearest column first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .distance
            .total_cmp(&self.distance)
            .then(other.column.cmp(&self.column))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The assignment being built over `columns` real columns, one unmatched column per row
/// (numbered `columns + row`), and the scratch space of the searches.
#[derive(Debug)]
pub struct SparseAssignment {
    columns: usize,
    unmatched_cost: f64,
    price: Vec<f64>,
    row_of_column: Vec<u32>,
    column_of_row: Vec<u32>,
    cost_of_row: Vec<f64>,
    // Search scratch, reset after every augmentation through `touched`.
    distance: Vec<f64>,
    settled: Vec<bool>,
    predecessor: Vec<u32>,
    touched: Vec<u32>,
    ready: Vec<u32>,
    heap: BinaryHeap<Queued>,
}

impl SparseAssignment {
    pub fn new(rows: usize, columns: usize, unmatched_cost: f64) -> Self {
        let all = columns + rows;
        to_u32(all);
        Self {
            columns,
            unmatched_cost,
            price: vec![0.0; all],
            row_of_column: vec![NONE; all],
            column_of_row: vec![NONE; rows],
            cost_of_row: vec![0.0; rows],
            distance: vec![f64::INFINITY; all],
            settled: vec![false; all],
            predecessor: vec![NONE; all],
            touched: Vec::new(),
            ready: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    /// An assignment another solver built: `prices` of the real columns (never positive), and
    /// for each row the real column it holds and that edge's cost, or `None` for its own
    /// "unmatched" column.
    pub(super) fn from_places(
        unmatched_cost: f64,
        prices: Vec<f64>,
        places: Vec<Option<(u32, f64)>>,
    ) -> Self {
        let (columns, rows) = (prices.len(), places.len());
        let mut assignment = Self::new(rows, columns, unmatched_cost);
        assignment.price[..columns].copy_from_slice(&prices);
        for (row, place) in places.into_iter().enumerate() {
            let (column, cost) = place.unwrap_or((to_u32(columns + row), unmatched_cost));
            assignment.row_of_column[column as usize] = to_u32(row);
            assignment.column_of_row[row] = column;
            assignment.cost_of_row[row] = cost;
        }
        assignment
    }

    /// The column `row` holds: `Some(real column)`, or `None` when unmatched or not yet placed.
    pub fn column_of(&self, row: usize) -> Option<u32> {
        let c = self.column_of_row[row];
        (c != NONE && (c as usize) < self.columns).then_some(c)
    }

    /// What the real column `row` holds costs, if it holds one.
    pub fn cost_of(&self, row: usize) -> Option<f64> {
        self.column_of(row).map(|_| self.cost_of_row[row])
    }

    /// The price of `column` (never positive: prices only fall).
    pub fn price(&self, column: u32) -> f64 {
        self.price[column as usize]
    }

    /// The row's dual value `cost - price` of the column it holds: every column `c` of its
    /// edges has `cost(c) - price(c) >= dual`, and a pair outside the graph with
    /// `cost - price < dual` would improve the assignment. `None` while the row is not placed.
    pub fn row_dual(&self, row: usize) -> Option<f64> {
        let c = self.column_of_row[row];
        (c != NONE).then(|| self.cost_of_row[row] - self.price[c as usize])
    }

    /// The row holding the real `column`, if any.
    pub fn row_of(&self, column: u32) -> Option<usize> {
        let r = self.row_of_column[column as usize];
        (r != NONE).then_some(r as usize)
    }

    pub fn is_column_taken(&self, column: u32) -> bool {
        self.row_of(column).is_some()
    }

    /// Takes `row` out of the assignment (to search again after its edges grew).
    pub fn release(&mut self, row: usize) {
        let c = self.column_of_row[row];
        if c != NONE {
            self.row_of_column[c as usize] = NONE;
            self.column_of_row[row] = NONE;
        }
    }

    fn edges<'g>(
        &self,
        graph: &'g CandidateGraph,
        row: u32,
    ) -> impl Iterator<Item = (u32, f64)> + 'g {
        let unmatched = (to_u32(self.columns) + row, self.unmatched_cost);
        graph
            .row(row as usize)
            .iter()
            .copied()
            .chain(std::iter::once(unmatched))
    }

    fn relax(&mut self, column: u32, distance: f64, from_row: u32) {
        let c = column as usize;
        if self.settled[c] || distance >= self.distance[c] {
            return;
        }
        if self.distance[c] == f64::INFINITY {
            self.touched.push(column);
        }
        self.distance[c] = distance;
        self.predecessor[c] = from_row;
        self.heap.push(Queued { distance, column });
    }

    /// Places the free `row` by the cheapest augmenting path (which may move other rows), or in
    /// its own "unmatched" column when every path costs more.
    pub fn augment(&mut self, graph: &CandidateGraph, row: usize) {
        let free_row = to_u32(row);
        debug_assert_eq!(self.column_of_row[row], NONE, "row {row} is already placed");
        for (column, cost) in self.edges(graph, free_row) {
            let reduced = cost - self.price[column as usize];
            self.relax(column, reduced, free_row);
        }
        let end = self
            .search(graph, true)
            .expect("the row's own unmatched column is always reachable");
        self.settle(graph, end);
        self.clear_search();
    }

    /// The second pass: serves as many of the rows still unmatched as the graph allows, at the
    /// least extra cost (within `slack` per row served; 0: exactly). "Unmatched" columns are no
    /// longer offered, so no served row is ever left out again.
    ///
    /// Each round is one Dijkstra from all unmatched rows at once (a super source) that runs
    /// `slack` past the first free column it reaches; the prices are lowered to that level, which
    /// makes every shortest path tight, and then as many row-disjoint tight paths as a
    /// depth-first search finds are flipped (Hopcroft–Karp's idea on the Hungarian method's
    /// equality graph). It stops when a search reaches no free column: no augmenting path is
    /// left, so no more rows can be served.
    ///
    /// Started from an exact solution of the penalised problem (every row placed by
    /// [`augment`](Self::augment)), this is successive shortest paths from a super source: the
    /// prices stay valid potentials (a served row's dual never exceeds an unserved row's). With
    /// `slack` 0 the result serves the most rows this graph can and, of those ways, has the least
    /// total cost. With `slack` > 0 it still serves the most rows, and a round flips many paths
    /// where free columns lie at similar distances — the edge of a crowded hotspot — instead of
    /// one; each path is then up to about `slack` longer than the shortest (a heuristic bound,
    /// not a proven one: docs/BENCHMARKS.md measures the cost). Returns how many more rows it
    /// served.
    ///
    /// The searches cross a crowd once per round, so where supply is short the rounds can be
    /// many: after settling `budget` columns in all, the rows still waiting are served by
    /// [`serve_any`](Self::serve_any) instead — as many, by the shortest paths in edges, whatever
    /// they cost — so the tick stays bounded and still serves the most rows.
    pub fn serve_the_rest(&mut self, graph: &CandidateGraph, slack: f64, budget: usize) -> usize {
        let mut waiting: Vec<u32> = (0..graph.rows())
            .filter(|&r| self.column_of(r).is_none() && !graph.row(r).is_empty())
            .map(to_u32)
            .collect();
        let mut served = 0;
        let mut stack: Vec<(u32, u32)> = Vec::new();
        let mut free_reached: Vec<(u32, f64)> = Vec::new();
        let mut work = 0;
        while !waiting.is_empty() {
            if work > budget {
                return served + self.serve_any(graph, waiting);
            }
            for &row in &waiting {
                for &(column, cost) in graph.row(row as usize) {
                    let reduced = cost - self.price[column as usize];
                    self.relax(column, reduced, row);
                }
            }
            let Some(level) = self.search_band(graph, slack) else {
                self.clear_search();
                break;
            };
            work += self.ready.len();
            free_reached.clear();
            for &column in &self.ready {
                let c = column as usize;
                if self.row_of_column[c] == NONE {
                    free_reached.push((column, self.price[c]));
                }
                self.price[c] += self.distance[c] - level;
            }
            // Tight paths, row-disjoint: a column is visited once a round.
            let mut kept = Vec::with_capacity(waiting.len());
            for &row in &waiting {
                match self.tight_path(graph, row, level, &mut stack) {
                    Some(end) => {
                        self.flip(graph, end);
                        served += 1;
                    }
                    None => kept.push(row),
                }
            }
            debug_assert!(
                kept.len() < waiting.len(),
                "a round serves at least one row"
            );
            waiting = kept;
            // A free column reached but not taken gets its price back, so the slack's discount
            // does not pile up over rounds (an edge into it may then be short of its row's dual
            // by at most `slack`, which the next search can only notice late by as much).
            for &(column, price) in &free_reached {
                if self.row_of_column[column as usize] == NONE {
                    self.price[column as usize] = price;
                }
            }
            self.clear_search();
        }
        served
    }

    /// Serves as many of the `waiting` rows as the graph allows, by augmenting paths with the
    /// fewest edges (Hopcroft–Karp: a breadth-first search in layers from all of them, then
    /// row-disjoint paths along the layers), whatever they cost. Returns how many it served.
    pub fn serve_any(&mut self, graph: &CandidateGraph, mut waiting: Vec<u32>) -> usize {
        waiting
            .retain(|&r| self.column_of(r as usize).is_none() && !graph.row(r as usize).is_empty());
        let mut layer = vec![u32::MAX; graph.rows()];
        let mut queue: Vec<u32> = Vec::new();
        let mut stack: Vec<(u32, u32)> = Vec::new();
        let mut served = 0;
        while !waiting.is_empty() {
            layer.fill(u32::MAX);
            queue.clear();
            for &row in &waiting {
                layer[row as usize] = 0;
                queue.push(row);
            }
            // The layer at which the nearest free column lies.
            let mut free_at = u32::MAX;
            let mut head = 0;
            while head < queue.len() {
                let row = queue[head];
                head += 1;
                let next = layer[row as usize] + 1;
                if next > free_at {
                    break;
                }
                for &(column, _) in graph.row(row as usize) {
                    let holder = self.row_of_column[column as usize];
                    if holder == NONE {
                        free_at = next;
                    } else if layer[holder as usize] == u32::MAX {
                        layer[holder as usize] = next;
                        queue.push(holder);
                    }
                }
            }
            if free_at == u32::MAX {
                break;
            }
            let mut kept = Vec::with_capacity(waiting.len());
            for &row in &waiting {
                match self.layered_path(graph, row, &layer, free_at, &mut stack) {
                    Some(end) => {
                        self.flip(graph, end);
                        served += 1;
                    }
                    None => kept.push(row),
                }
            }
            waiting = kept;
            self.clear_search();
        }
        served
    }

    /// A path from `start` along the layers to a free column at layer `free_at`, over columns
    /// not yet visited this phase (`settled` marks a visit here); records it in `predecessor`.
    fn layered_path(
        &mut self,
        graph: &CandidateGraph,
        start: u32,
        layer: &[u32],
        free_at: u32,
        stack: &mut Vec<(u32, u32)>,
    ) -> Option<u32> {
        self.path_from(graph, start, stack, |this, row, column, _| {
            let c = column as usize;
            if this.settled[c] {
                return false;
            }
            let next = layer[row as usize] + 1;
            let holder = this.row_of_column[c];
            let onward = if holder == NONE {
                next == free_at
            } else {
                next < free_at && layer[holder as usize] == next
            };
            if onward {
                this.settled[c] = true;
                this.touched.push(column);
            }
            onward
        })
    }

    /// A depth-first search (iterative: paths can be thousands of rows long) from the unmatched
    /// row `start` to a free column, stepping from a row to a column where `step(self, row,
    /// column, cost)` allows it (the step also marks the column visited), then on to the column's
    /// holder. Records the path in `predecessor`; returns the free column.
    fn path_from(
        &mut self,
        graph: &CandidateGraph,
        start: u32,
        stack: &mut Vec<(u32, u32)>,
        mut step: impl FnMut(&mut Self, u32, u32, f64) -> bool,
    ) -> Option<u32> {
        stack.clear();
        stack.push((start, 0));
        while let Some(top) = stack.last_mut() {
            let row = top.0;
            let edges = graph.row(row as usize);
            let mut next_row = None;
            while (top.1 as usize) < edges.len() {
                let (column, cost) = edges[top.1 as usize];
                top.1 += 1;
                if !step(self, row, column, cost) {
                    continue;
                }
                self.predecessor[column as usize] = row;
                let holder = self.row_of_column[column as usize];
                if holder == NONE {
                    return Some(column);
                }
                next_row = Some(holder);
                break;
            }
            match next_row {
                Some(holder) => stack.push((holder, 0)),
                None => {
                    stack.pop();
                }
            }
        }
        None
    }

    /// The second pass's Dijkstra: settles columns (free ones included, which lead nowhere)
    /// until it pops one more than `slack` beyond the first free column. Returns that level
    /// (every settled column is at most that far, every other one at least), or `None` when no
    /// free column is reachable.
    fn search_band(&mut self, graph: &CandidateGraph, slack: f64) -> Option<f64> {
        let mut first_free: Option<f64> = None;
        while let Some(Queued { distance, column }) = self.heap.pop() {
            let c = column as usize;
            if self.settled[c] || distance > self.distance[c] {
                continue;
            }
            if first_free.is_some_and(|first| distance > first + slack) {
                break;
            }
            self.settled[c] = true;
            self.ready.push(column);
            let holder = self.row_of_column[c];
            if holder == NONE {
                first_free.get_or_insert(distance);
                continue;
            }
            let offset = distance - (self.cost_of_row[holder as usize] - self.price[c]);
            for &(next, cost) in graph.row(holder as usize) {
                let reduced = cost - self.price[next as usize] + offset;
                self.relax(next, reduced, holder);
            }
        }
        first_free.map(|first| first + slack)
    }

    /// A path of tight edges over settled, not yet visited columns from the unmatched `start`
    /// (whose dual is `level`) to a free column; a visit clears `settled`. Records the path in
    /// `predecessor`; returns the free column.
    fn tight_path(
        &mut self,
        graph: &CandidateGraph,
        start: u32,
        level: f64,
        stack: &mut Vec<(u32, u32)>,
    ) -> Option<u32> {
        self.path_from(graph, start, stack, |this, row, column, cost| {
            let c = column as usize;
            let dual = if row == start {
                level
            } else {
                this.cost_of_row[row as usize]
                    - this.price[this.column_of_row[row as usize] as usize]
            };
            let tight = this.settled[c] && cost - this.price[c] <= dual + 1e-9 * (1.0 + dual.abs());
            if tight {
                this.settled[c] = false;
            }
            tight
        })
    }

    /// Dijkstra over reduced costs from the columns already relaxed, until it settles a free
    /// column (returned) or runs out. A row reached through the column it holds offers its other
    /// columns, and its "unmatched" column when `offer_unmatched`.
    fn search(&mut self, graph: &CandidateGraph, offer_unmatched: bool) -> Option<u32> {
        while let Some(Queued { distance, column }) = self.heap.pop() {
            let c = column as usize;
            if self.settled[c] || distance > self.distance[c] {
                continue;
            }
            self.settled[c] = true;
            self.ready.push(column);
            let holder = self.row_of_column[c];
            if holder == NONE {
                return Some(column);
            }
            // Reaching `holder` through its column costs `distance`; its other columns cost
            // their reduced cost on top, relative to the one it holds.
            let offset = distance - (self.cost_of_row[holder as usize] - self.price[c]);
            let unmatched =
                offer_unmatched.then_some((to_u32(self.columns) + holder, self.unmatched_cost));
            for (next, cost) in graph.row(holder as usize).iter().copied().chain(unmatched) {
                let reduced = cost - self.price[next as usize] + offset;
                self.relax(next, reduced, holder);
            }
        }
        None
    }

    /// After a search that settled the free column `end`: lowers the settled columns' prices and
    /// flips the path to it.
    fn settle(&mut self, graph: &CandidateGraph, end: u32) -> u32 {
        let shortest = self.distance[end as usize];
        for &column in &self.ready {
            let c = column as usize;
            // Never above 0: a no-op from exact prices (every settled column is at most
            // `shortest` away), a bound from the auction's ε-exact ones.
            self.price[c] = (self.price[c] + self.distance[c] - shortest).min(0.0);
        }
        self.flip(graph, end)
    }

    /// Flips the path recorded in `predecessor` from the free column `end` back to the row it
    /// started from (returned). That row leaves its "unmatched" column if it held one.
    fn flip(&mut self, graph: &CandidateGraph, end: u32) -> u32 {
        let mut column = end;
        loop {
            let row = self.predecessor[column as usize];
            let previous = self.column_of_row[row as usize];
            let cost = self
                .edges(graph, row)
                .find(|(c, _)| *c == column)
                .map_or(self.unmatched_cost, |(_, cost)| cost);
            self.row_of_column[column as usize] = row;
            self.column_of_row[row as usize] = column;
            self.cost_of_row[row as usize] = cost;
            if previous == NONE || previous as usize >= self.columns {
                if previous != NONE && previous != column {
                    self.row_of_column[previous as usize] = NONE;
                }
                return row;
            }
            column = previous;
        }
    }

    fn clear_search(&mut self) {
        for &column in &self.touched {
            let c = column as usize;
            self.distance[c] = f64::INFINITY;
            self.settled[c] = false;
            self.predecessor[c] = NONE;
        }
        self.touched.clear();
        self.ready.clear();
        self.heap.clear();
    }
}

/// Places every row, in `order` (each row once): the optimum does not depend on the order (up to
/// ties), the work does.
pub fn solve_in_order(
    graph: &CandidateGraph,
    columns: usize,
    unmatched_cost: f64,
    order: impl IntoIterator<Item = usize>,
) -> SparseAssignment {
    let mut assignment = SparseAssignment::new(graph.rows(), columns, unmatched_cost);
    for row in order {
        assignment.augment(graph, row);
    }
    assignment
}

/// Solves the whole graph, rows in order: `result[row] = Some(column)` or `None` (unmatched).
pub fn solve(graph: &CandidateGraph, columns: usize, unmatched_cost: f64) -> Vec<Option<u32>> {
    let assignment = solve_in_order(graph, columns, unmatched_cost, 0..graph.rows());
    (0..graph.rows()).map(|r| assignment.column_of(r)).collect()
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::{Strategy, prop, prop_assert, prop_assert_eq, proptest};

    use super::*;
    use crate::matching::hungarian;

    /// The costs as the dense solver takes them: the real columns, then one "unmatched" column
    /// per row; a missing edge (or another row's unmatched column) dearer than being unmatched.
    fn padded(
        costs: &[Vec<Option<f64>>],
        columns: usize,
        unmatched: f64,
    ) -> impl Fn(usize, usize) -> f64 + '_ {
        move |r: usize, c: usize| {
            if c < columns {
                costs[r][c].unwrap_or(unmatched * 2.0 + 1.0)
            } else if c - columns == r {
                unmatched
            } else {
                unmatched * 2.0 + 1.0
            }
        }
    }

    /// The dense exact optimum of the same problem: unmatched columns per row, missing edges
    /// dearer than being unmatched.
    pub(crate) fn dense_optimum(costs: &[Vec<Option<f64>>], columns: usize, unmatched: f64) -> f64 {
        let rows = costs.len();
        let cost = padded(costs, columns, unmatched);
        hungarian::solve(rows, columns + rows, &cost)
            .iter()
            .enumerate()
            .map(|(r, c)| cost(r, *c))
            .sum()
    }

    fn total(costs: &[Vec<Option<f64>>], result: &[Option<u32>], unmatched: f64) -> f64 {
        result
            .iter()
            .enumerate()
            .map(|(r, c)| c.map_or(unmatched, |c| costs[r][c as usize].expect("an edge")))
            .sum()
    }

    pub(crate) fn graph_of(costs: &[Vec<Option<f64>>]) -> CandidateGraph {
        let mut graph = CandidateGraph::default();
        for row in costs {
            graph.push_row(
                row.iter()
                    .enumerate()
                    .filter_map(|(c, cost)| cost.map(|cost| (c as u32, cost))),
            );
        }
        graph
    }

    #[test]
    fn a_rider_with_no_candidate_is_left_out_without_blocking_others() {
        let costs = vec![
            vec![Some(1.0), None],
            vec![None, None],
            vec![Some(2.0), Some(3.0)],
        ];
        let result = solve(&graph_of(&costs), 2, 10.0);
        assert_eq!(result, vec![Some(0), None, Some(1)]);
    }

    #[test]
    fn a_pair_dearer_than_leaving_the_rider_out_is_not_made() {
        let costs = vec![vec![Some(1.0)], vec![Some(50.0)]];
        assert_eq!(solve(&graph_of(&costs), 1, 10.0), vec![Some(0), None]);
        let costs = vec![vec![Some(1.0), Some(2.0)], vec![Some(1.5), Some(50.0)]];
        // Row 1 bumps row 0 to its second choice rather than paying 10 to sit out.
        assert_eq!(solve(&graph_of(&costs), 2, 10.0), vec![Some(1), Some(0)]);
    }

    /// The dense optimum of "serve as many rows as possible, then the least cost": an unmatched
    /// row costs more than any set of pairs could save. Returns (rows served, their cost).
    fn dense_most_served(costs: &[Vec<Option<f64>>], columns: usize) -> (usize, f64) {
        let rows = costs.len();
        let most = costs
            .iter()
            .flatten()
            .flatten()
            .fold(0.0_f64, |a, b| a.max(*b))
            + 1.0;
        let unmatched = (rows.min(columns) + 1) as f64 * most;
        let cost = padded(costs, columns, unmatched);
        let mut served = 0;
        let mut total = 0.0;
        for (r, c) in hungarian::solve(rows, columns + rows, &cost)
            .into_iter()
            .enumerate()
        {
            if c < columns {
                served += 1;
                total += cost(r, c);
            }
        }
        (served, total)
    }

    #[test]
    fn the_second_pass_serves_a_rider_the_penalty_left_out() {
        // Row 1's only driver is row 0's; row 0 can move to a driver 40 farther, more than the
        // penalty of 10 (so the first pass leaves row 1 out), but a rider waiting is worse.
        let costs = vec![vec![Some(1.0), Some(41.0)], vec![Some(2.0), None]];
        let graph = graph_of(&costs);
        let mut assignment = solve_in_order(&graph, 2, 10.0, 0..2);
        assert_eq!(assignment.column_of(1), None);
        assert_eq!(assignment.serve_the_rest(&graph, 0.0, usize::MAX), 1);
        assert_eq!(
            (assignment.column_of(0), assignment.column_of(1)),
            (Some(1), Some(0))
        );
    }

    /// 1–8 rows of 1–8 columns, each cell an edge with probability `density`.
    fn cost_matrix(density: f64) -> impl Strategy<Value = Vec<Vec<Option<f64>>>> {
        (1usize..9, 1usize..9).prop_flat_map(move |(rows, cols)| {
            prop::collection::vec(
                prop::collection::vec(prop::option::weighted(density, 0.0..100.0_f64), cols),
                rows,
            )
        })
    }

    proptest! {
        #[test]
        fn the_second_pass_serves_the_most_and_without_slack_at_the_least_cost(
            costs in cost_matrix(0.4),
            penalty in prop::sample::select(vec![5.0, 40.0, 150.0]),
            slack in prop::sample::select(vec![0.0, 0.0, 3.0, 20.0]),
            budget in prop::sample::select(vec![usize::MAX, usize::MAX, 0, 5]),
        ) {
            let columns = costs[0].len();
            let graph = graph_of(&costs);
            let mut assignment = solve_in_order(&graph, columns, penalty, 0..costs.len());
            let more = assignment.serve_the_rest(&graph, slack, budget);
            let mut used = vec![false; columns];
            let (mut served, mut total) = (0, 0.0);
            for (r, row) in costs.iter().enumerate() {
                if let Some(c) = assignment.column_of(r) {
                    prop_assert!(!used[c as usize], "column {} used twice", c);
                    used[c as usize] = true;
                    served += 1;
                    total += row[c as usize].expect("an edge");
                }
            }
            let (best_served, best_total) = dense_most_served(&costs, columns);
            prop_assert_eq!(served, best_served);
            // Never below the optimum; exactly it without slack (with slack the pickup it adds
            // is measured, not bounded: docs/BENCHMARKS.md).
            let tolerance = 1e-6 * best_total.max(1.0);
            prop_assert!(total >= best_total - tolerance, "second pass {} below the optimum {}", total, best_total);
            if slack == 0.0 && budget == usize::MAX {
                prop_assert!(total <= best_total + tolerance,
                    "second pass {} vs dense {} ({} rows served by it)", total, best_total, more);
            }
        }

        #[test]
        fn equals_the_dense_optimum(
            costs in cost_matrix(0.6),
            unmatched in prop::sample::select(vec![5.0, 40.0, 1e6]),
        ) {
            let columns = costs[0].len();
            let result = solve(&graph_of(&costs), columns, unmatched);
            let mut used = vec![false; columns];
            for c in result.iter().flatten() {
                prop_assert!(!used[*c as usize], "column {} used twice", c);
                used[*c as usize] = true;
            }
            let found = total(&costs, &result, unmatched);
            let exact = dense_optimum(&costs, columns, unmatched);
            prop_assert!((found - exact).abs() <= 1e-6 * exact.max(1.0), "sparse {} vs exact {}", found, exact);
        }

        #[test]
        fn growing_a_released_row_keeps_the_optimum(
            costs in prop::collection::vec(prop::collection::vec(prop::option::weighted(0.5, 0.0..100.0_f64), 6), 6),
            hidden in prop::collection::vec(prop::collection::vec(prop::bool::ANY, 6), 6),
        ) {
            // Solve with some edges hidden, then reveal them for the unmatched rows, as the
            // second pass of `assign` does; the result is the optimum of the revealed graph.
            let unmatched = 60.0;
            let visible: Vec<Vec<Option<f64>>> = costs.iter().zip(&hidden)
                .map(|(row, h)| row.iter().zip(h).map(|(c, hide)| if *hide { None } else { *c }).collect())
                .collect();
            let mut graph = graph_of(&visible);
            let mut assignment = SparseAssignment::new(6, 6, unmatched);
            for r in 0..6 { assignment.augment(&graph, r); }
            let mut revealed = visible.clone();
            for r in 0..6 {
                if assignment.column_of(r).is_none() {
                    revealed[r] = costs[r].clone();
                    graph.extend_row(r, costs[r].iter().enumerate().filter_map(|(c, x)| x.map(|x| (c as u32, x))));
                    assignment.release(r);
                    assignment.augment(&graph, r);
                }
            }
            let result: Vec<Option<u32>> = (0..6).map(|r| assignment.column_of(r)).collect();
            let found = total(&revealed, &result, unmatched);
            let exact = dense_optimum(&revealed, 6, unmatched);
            prop_assert!((found - exact).abs() <= 1e-6 * exact.max(1.0), "incremental {} vs exact {}", found, exact);
        }
    }
}
