//! The first pass's fast solver: Bertsekas's auction with ε-scaling, on the same sparse
//! candidate graph and with the same private "unmatched" column per row as
//! [`sparse`](super::sparse).
//!
//! Successive shortest paths (the exact solver) runs one Dijkstra per rider; where demand crowds
//! a hotspot, every rider the crowd's drivers cannot serve searches across the whole crowd to a
//! free driver beyond it, so the work grows with the crowd times its shortfall. In an auction a
//! rider without a driver instead *bids* for its cheapest one (cost plus price), raising that
//! driver's price to what the rider's second choice costs plus ε and displacing its holder, who
//! bids in turn; the crowd's prices rise together until its edge is worth reaching. Bidding
//! starts at the finest ε, which settles a city where drivers are plenty in a few bids a rider;
//! where a crowd's price war outlasts a budget of bids, ε grows until the war ends, then is
//! scaled down in phases (each starting from the previous phase's prices), so a rider moves a
//! few times a phase, whatever the crowd's size.
//!
//! The result satisfies ε-complementary slackness: every rider's pair costs at most ε more than
//! its best alternative at the final prices, and every driver left free has price 0 (a reverse
//! step after each phase lowers the price of a free driver, moving to it the rider who gains
//! most, until none is priced above 0: the condition that makes an assignment with free columns
//! ε-optimal). So the total is within `rows × ε` of the graph's optimum: a bound, and in practice
//! far closer. The exact solver stays for `Effort::EXACT` and for pricing rounds.

use super::sparse::{CandidateGraph, SparseAssignment};

const NONE: u32 = u32::MAX;
/// ε falls by this factor from one phase to the next.
const SCALING: f64 = 5.0;
/// Bids a row at the finest ε before ε is made coarser (a price war in a crowd).
const BIDS_PER_ROW: usize = 3;
/// Bids a row at a fifth of the longest edge before ε jumps to a fifth of the unmatched cost
/// (a war over who goes unserved). Where riders outnumber drivers with no radius every bid of
/// this budget is wasted; where drivers are to spare a war over the farther driver may need a
/// few dozen. 20 measured 1.4–1.9× faster than 64 in the first case (7k and 10k riders, 0.7
/// drivers each) and the same in the second; 8 lost a third in the second (docs/BENCHMARKS.md).
const WAR_BIDS_PER_ROW: usize = 20;

/// Solves the graph with leaving a row unmatched costing `unmatched_cost`, to within `epsilon`
/// a row (a positive distance; the last phase's ε). Rows with no edge are left unmatched.
pub fn solve(
    graph: &CandidateGraph,
    columns: usize,
    unmatched_cost: f64,
    epsilon: f64,
) -> SparseAssignment {
    solve_counting_bids(graph, columns, unmatched_cost, epsilon, None).0
}

/// [`solve`], starting from `prices` (each column's, as [`SparseAssignment::price`] gives them)
/// instead of nothing: after a few edges were added to a graph solved before, its prices are
/// nearly right, and the rows settle in a few bids each.
pub fn solve_from(
    graph: &CandidateGraph,
    columns: usize,
    unmatched_cost: f64,
    epsilon: f64,
    prices: &SparseAssignment,
) -> SparseAssignment {
    let start = (0..columns).map(|c| -prices.price(to_u32(c))).collect();
    solve_counting_bids(graph, columns, unmatched_cost, epsilon, Some(start)).0
}

/// [`solve`], and the forward bids it took.
fn solve_counting_bids(
    graph: &CandidateGraph,
    columns: usize,
    unmatched_cost: f64,
    epsilon: f64,
    prices: Option<Vec<f64>>,
) -> (SparseAssignment, usize) {
    let mut auction = Auction::new(graph, columns, unmatched_cost);
    if let Some(prices) = prices {
        auction.price = prices;
    }
    let largest = (0..graph.rows())
        .flat_map(|r| graph.row(r).iter().map(|e| e.1))
        .fold(0.0_f64, f64::max)
        .min(unmatched_cost);
    let epsilon = if epsilon > 0.0 {
        epsilon
    } else {
        1e-9 * (1.0 + largest)
    };
    // Bidding starts at the finest ε: where drivers are plenty and spread out, the few
    // conflicts settle in a few bids each. Where a crowd bids for too few drivers, prices
    // climb by about ε a bid; once the bids exceed a budget, ε grows (the prices reached are
    // kept: ε-slackness at a finer ε holds at a coarser one) until the crowd settles. Then ε
    // falls five-fold a phase back to `epsilon`.
    //
    // ε grows to a fifth of the longest edge: a war over which rider takes the farther driver
    // settles there. A war that goes on past a longer budget is over which riders go unserved
    // (more riders than drivers in reach, the unmatched cost far above every edge: no radius):
    // prices must climb to the unmatched cost, which at the edges' scale took ~10⁷ bids in a
    // 2,000 × 1,500 tick, so ε jumps to a fifth of the unmatched cost.
    let mut eps = epsilon;
    let edge_scale = (largest / SCALING).max(epsilon);
    let coarsest = (unmatched_cost / SCALING).max(edge_scale);
    let rows = graph.rows();
    let mut waiting: Vec<u32> = (0..rows).rev().map(to_u32).collect();
    loop {
        let budget = if eps >= coarsest {
            usize::MAX
        } else if eps >= edge_scale {
            WAR_BIDS_PER_ROW * rows + 64
        } else {
            BIDS_PER_ROW * rows + 64
        };
        if auction.bid_until_placed(&mut waiting, eps, budget) {
            break;
        }
        eps = if eps >= edge_scale {
            coarsest
        } else {
            (eps * SCALING * SCALING).min(edge_scale)
        };
    }
    loop {
        auction.lower_unwanted_prices(eps);
        if eps <= epsilon {
            break;
        }
        eps = (eps / SCALING).max(epsilon);
        auction.release_unsatisfied(eps, &mut waiting);
        auction.bid_until_placed(&mut waiting, eps, usize::MAX);
    }
    let bids = auction.bids;
    (auction.into_assignment(), bids)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2^32 rows and columns")
}

/// Each column's `(row, cost)` entries: column `c`'s are `entries[starts[c]..starts[c + 1]]`.
type Transpose = (Vec<u32>, Vec<(u32, f64)>);

struct Auction<'g> {
    graph: &'g CandidateGraph,
    unmatched_cost: f64,
    /// What holding a column costs on top of its edge (never negative; rises in bids, falls in
    /// the reverse step).
    price: Vec<f64>,
    owner: Vec<u32>,
    /// The real column a row holds, `NONE` when it holds its own "unmatched" column (or, while
    /// it waits to bid, nothing: every row is placed once `bid_until_placed` returns).
    held: Vec<u32>,
    /// The edge cost of what the row holds (`unmatched_cost` for its own column).
    cost: Vec<f64>,
    /// Every column's rows and costs (built for the first reverse step).
    by_column: Option<Transpose>,
    /// Forward bids so far.
    bids: usize,
}

impl<'g> Auction<'g> {
    fn new(graph: &'g CandidateGraph, columns: usize, unmatched_cost: f64) -> Self {
        let rows = graph.rows();
        Self {
            graph,
            unmatched_cost,
            price: vec![0.0; columns],
            owner: vec![NONE; columns],
            held: vec![NONE; rows],
            cost: vec![unmatched_cost; rows],
            by_column: None,
            bids: 0,
        }
    }

    /// What the row's current place costs it, price included.
    fn level(&self, row: usize) -> f64 {
        match self.held[row] {
            NONE => self.unmatched_cost,
            c => self.cost[row] + self.price[c as usize],
        }
    }

    /// Forward bids (Gauss–Seidel: one waiting row at a time) until every row is placed
    /// (returns true) or `budget` bids are spent (false; the rest still wait).
    fn bid_until_placed(&mut self, waiting: &mut Vec<u32>, eps: f64, mut budget: usize) -> bool {
        while let Some(row) = waiting.pop() {
            if budget == 0 {
                waiting.push(row);
                return false;
            }
            budget -= 1;
            self.bids += 1;
            let r = row as usize;
            // The best and second-best place, the row's own unmatched column among them.
            let (mut best, mut best_cost, mut best_value) =
                (NONE, self.unmatched_cost, self.unmatched_cost);
            let mut second_value = f64::INFINITY;
            for &(column, cost) in self.graph.row(r) {
                let value = cost + self.price[column as usize];
                if value < best_value {
                    second_value = best_value;
                    (best, best_cost, best_value) = (column, cost, value);
                } else if value < second_value {
                    second_value = value;
                }
            }
            self.cost[r] = best_cost;
            self.held[r] = best;
            if best == NONE {
                continue;
            }
            // The unmatched column is the best or among the rest, so the second is finite.
            let c = best as usize;
            self.price[c] = second_value + eps - best_cost;
            let displaced = std::mem::replace(&mut self.owner[c], row);
            if displaced != NONE {
                self.held[displaced as usize] = NONE;
                waiting.push(displaced);
            }
        }
        true
    }

    /// The reverse step: while a free column is priced above 0, either no row would pay for it
    /// (its price goes to 0) or the row that gains most moves to it, at a price that keeps every
    /// other row's ε-slackness, and the column it leaves is looked at in turn. Each move lowers
    /// a row's level by at least ε and none rises, so it ends.
    fn lower_unwanted_prices(&mut self, eps: f64) {
        let mut unwanted: Vec<u32> = (0..self.price.len())
            .filter(|&c| self.owner[c] == NONE && self.price[c] > 0.0)
            .map(to_u32)
            .collect();
        if unwanted.is_empty() {
            return;
        }
        let (starts, entries) = self.by_column.take().unwrap_or_else(|| self.transpose());
        while let Some(column) = unwanted.pop() {
            let c = column as usize;
            if self.owner[c] != NONE || self.price[c] <= 0.0 {
                continue;
            }
            let (mut gainer, mut gainer_cost) = (NONE, 0.0);
            let (mut first, mut second) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            for &(row, cost) in &entries[starts[c] as usize..starts[c + 1] as usize] {
                let gain = self.level(row as usize) - cost;
                if gain > first {
                    second = first;
                    (gainer, gainer_cost, first) = (row, cost, gain);
                } else if gain > second {
                    second = gain;
                }
            }
            if first <= eps {
                self.price[c] = 0.0;
                continue;
            }
            let g = gainer as usize;
            let left = self.held[g];
            if left != NONE {
                self.owner[left as usize] = NONE;
                if self.price[left as usize] > 0.0 {
                    unwanted.push(left);
                }
            }
            self.owner[c] = gainer;
            self.held[g] = column;
            self.cost[g] = gainer_cost;
            self.price[c] = (second - eps).max(0.0);
        }
        self.by_column = Some((starts, entries));
    }

    fn transpose(&self) -> Transpose {
        let columns = self.price.len();
        let mut starts = vec![0_u32; columns + 1];
        for r in 0..self.graph.rows() {
            for &(column, _) in self.graph.row(r) {
                starts[column as usize + 1] += 1;
            }
        }
        for c in 0..columns {
            starts[c + 1] += starts[c];
        }
        let mut next = starts.clone();
        let mut entries = vec![(0_u32, 0.0_f64); starts[columns] as usize];
        for r in 0..self.graph.rows() {
            for &(column, cost) in self.graph.row(r) {
                let at = &mut next[column as usize];
                entries[*at as usize] = (to_u32(r), cost);
                *at += 1;
            }
        }
        (starts, entries)
    }

    /// At a new, smaller ε: rows whose place costs more than ε above their best alternative
    /// wait to bid again (the rest keep their place).
    fn release_unsatisfied(&mut self, eps: f64, waiting: &mut Vec<u32>) {
        for r in (0..self.graph.rows()).rev() {
            let level = self.level(r);
            let best = self
                .graph
                .row(r)
                .iter()
                .map(|&(column, cost)| cost + self.price[column as usize])
                .fold(self.unmatched_cost, f64::min);
            if level > best + eps {
                let left = std::mem::replace(&mut self.held[r], NONE);
                if left != NONE {
                    self.owner[left as usize] = NONE;
                }
                waiting.push(to_u32(r));
            }
        }
    }

    fn into_assignment(self) -> SparseAssignment {
        let held = self
            .held
            .iter()
            .zip(&self.cost)
            .map(|(&column, &cost)| (column != NONE).then_some((column, cost)))
            .collect();
        let prices = self.price.iter().map(|p| -p).collect();
        SparseAssignment::from_places(self.unmatched_cost, prices, held)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Strategy, prop, prop_assert, proptest};

    use super::*;
    use crate::matching::sparse::tests::{dense_optimum, graph_of};

    #[test]
    fn a_crowd_outbids_itself_until_the_far_driver_is_worth_reaching() {
        // Three riders want the same two drivers; the third must take the far one (or sit out
        // when sitting out is cheaper).
        let costs = vec![
            vec![Some(1.05), Some(1.1), Some(50.0)],
            vec![Some(1.0), Some(1.2), None],
            vec![Some(1.1), Some(1.0), None],
        ];
        let graph = graph_of(&costs);
        let assignment = solve(&graph, 3, 100.0, 0.001);
        let columns: Vec<_> = (0..3).map(|r| assignment.column_of(r)).collect();
        assert_eq!(columns, vec![Some(2), Some(0), Some(1)]);
        let cheap = solve(&graph, 3, 10.0, 0.001);
        assert_eq!(
            cheap.column_of(0),
            None,
            "sitting out (10) is cheaper than 50"
        );
    }

    #[test]
    fn a_price_war_at_a_fine_epsilon_coarsens_and_still_lands_within_the_bound() {
        // Forty riders want four drivers at nearly the same cost: at ε = 1e-7 prices would climb
        // 1e-7 a bid towards the unmatched cost of 100 (about 10⁹ bids) unless ε grows.
        let costs: Vec<Vec<Option<f64>>> = (0..40)
            .map(|r| {
                (0..4)
                    .map(|c| Some(10.0 + 1e-9 * f64::from(r * 4 + c)))
                    .collect()
            })
            .collect();
        let epsilon = 1e-7;
        let assignment = solve(&graph_of(&costs), 4, 100.0, epsilon);
        let served: Vec<usize> = (0..40)
            .filter(|&r| assignment.column_of(r).is_some())
            .collect();
        assert_eq!(served.len(), 4, "every driver is taken");
        let total: f64 = (0..40)
            .map(|r| assignment.cost_of(r).unwrap_or(100.0))
            .sum();
        let best = dense_optimum(&costs, 4, 100.0);
        assert!(
            total >= best - 1e-9 && total <= best + 40.0 * epsilon,
            "{total} vs {best}"
        );
    }

    #[test]
    fn more_riders_than_drivers_with_no_radius_settle_in_few_bids() {
        // 300 riders want the same 100 drivers, edges of 1 to 10 m, and leaving a rider out
        // costs 8,000 km (no radius). Prices must climb to about the unmatched cost before 200
        // riders give up: at a fifth of the longest edge that was ~10⁷ bids.
        let costs: Vec<Vec<Option<f64>>> = (0..300)
            .map(|r| {
                (0..100)
                    .map(|c| Some(1.0 + f64::from((r * 7 + c * 13) % 90) / 10.0))
                    .collect()
            })
            .collect();
        let (epsilon, unmatched) = (1e-3, 8e6);
        let (assignment, bids) =
            solve_counting_bids(&graph_of(&costs), 100, unmatched, epsilon, None);
        assert!(bids < 300 * 200, "{bids} bids");
        let served = (0..300)
            .filter(|&r| assignment.column_of(r).is_some())
            .count();
        assert_eq!(served, 100, "every driver is taken");
        let total: f64 = (0..300)
            .map(|r| assignment.cost_of(r).unwrap_or(unmatched))
            .sum();
        let best = dense_optimum(&costs, 100, unmatched);
        assert!(
            total >= best - 1e-6 * best && total <= best + 300.0 * epsilon + 1e-9 * best,
            "{total} vs {best}"
        );
    }

    fn cost_matrix() -> impl Strategy<Value = Vec<Vec<Option<f64>>>> {
        (1usize..10, 1usize..10).prop_flat_map(|(rows, cols)| {
            prop::collection::vec(
                prop::collection::vec(prop::option::weighted(0.5, 0.0..100.0_f64), cols),
                rows,
            )
        })
    }

    proptest! {
        #[test]
        fn within_rows_times_epsilon_of_the_optimum(
            costs in cost_matrix(),
            unmatched in prop::sample::select(vec![5.0, 40.0, 1e4]),
            epsilon in prop::sample::select(vec![1e-6, 0.01, 0.5, 3.0]),
            start in prop::option::of(prop::collection::vec(0.0..200.0_f64, 9)),
        ) {
            let columns = costs[0].len();
            let graph = graph_of(&costs);
            // Any prices are a valid start too (a warm start after edges were added).
            let assignment = match start {
                None => solve(&graph, columns, unmatched, epsilon),
                Some(start) => {
                    let prices = start[..columns].iter().map(|p| -p).collect();
                    let from = SparseAssignment::from_places(unmatched, prices, vec![None; costs.len()]);
                    solve_from(&graph, columns, unmatched, epsilon, &from)
                }
            };
            let mut used = vec![false; columns];
            let mut total = 0.0;
            for (r, row) in costs.iter().enumerate() {
                match assignment.column_of(r) {
                    Some(c) => {
                        prop_assert!(!used[c as usize], "column {} used twice", c);
                        used[c as usize] = true;
                        let cost = row[c as usize].expect("only edges of the graph are used");
                        prop_assert!(assignment.cost_of(r) == Some(cost));
                        total += cost;
                    }
                    None => total += unmatched,
                }
            }
            let best = dense_optimum(&costs, columns, unmatched);
            let bound = costs.len() as f64 * epsilon + 1e-6 * best.max(1.0);
            prop_assert!(total >= best - 1e-6 * best.max(1.0), "auction {} below the optimum {}", total, best);
            prop_assert!(total <= best + bound, "auction {} vs optimum {} (ε {})", total, best, epsilon);
        }
    }
}
