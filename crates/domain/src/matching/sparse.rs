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

    /// The column `row` holds: `Some(real column)`, or `None` when unmatched or not yet placed.
    pub fn column_of(&self, row: usize) -> Option<u32> {
        let c = self.column_of_row[row];
        (c != NONE && (c as usize) < self.columns).then_some(c)
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

    pub fn is_column_taken(&self, column: u32) -> bool {
        self.row_of_column[column as usize] != NONE
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

    /// Places the free `row` by the cheapest augmenting path (which may move other rows).
    pub fn augment(&mut self, graph: &CandidateGraph, row: usize) {
        let free_row = to_u32(row);
        debug_assert_eq!(self.column_of_row[row], NONE, "row {row} is already placed");
        for (column, cost) in self.edges(graph, free_row) {
            let reduced = cost - self.price[column as usize];
            self.relax(column, reduced, free_row);
        }
        let end = loop {
            let Some(Queued { distance, column }) = self.heap.pop() else {
                unreachable!("the row's own unmatched column is always reachable");
            };
            let c = column as usize;
            if self.settled[c] || distance > self.distance[c] {
                continue;
            }
            self.settled[c] = true;
            self.ready.push(column);
            let holder = self.row_of_column[c];
            if holder == NONE {
                break column;
            }
            // Reaching `holder` through its column costs `distance`; its other columns cost
            // their reduced cost on top, relative to the one it holds.
            let offset = distance - (self.cost_of_row[holder as usize] - self.price[c]);
            for (next, cost) in self.edges(graph, holder) {
                let reduced = cost - self.price[next as usize] + offset;
                self.relax(next, reduced, holder);
            }
        };
        let shortest = self.distance[end as usize];
        for &column in &self.ready {
            let c = column as usize;
            self.price[c] += self.distance[c] - shortest;
        }
        // Flip the path from the free column back to the free row.
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
            if row == free_row {
                break;
            }
            column = previous;
        }
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
mod tests {
    use proptest::prelude::{Strategy, prop, prop_assert, proptest};

    use super::*;
    use crate::matching::hungarian;

    /// The dense exact optimum of the same problem: unmatched columns per row, missing edges
    /// dearer than being unmatched.
    fn dense_optimum(costs: &[Vec<Option<f64>>], columns: usize, unmatched: f64) -> f64 {
        let rows = costs.len();
        let cost = |r: usize, c: usize| {
            if c < columns {
                costs[r][c].unwrap_or(unmatched * 2.0 + 1.0)
            } else if c - columns == r {
                unmatched
            } else {
                unmatched * 2.0 + 1.0
            }
        };
        hungarian::solve(rows, columns + rows, cost)
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

    fn graph_of(costs: &[Vec<Option<f64>>]) -> CandidateGraph {
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

    proptest! {
        #[test]
        fn equals_the_dense_optimum(
            costs in (1usize..9, 1usize..9).prop_flat_map(|(rows, cols)| {
                prop::collection::vec(
                    prop::collection::vec(prop::option::weighted(0.6, 0.0..100.0_f64), cols),
                    rows,
                )
            }),
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
