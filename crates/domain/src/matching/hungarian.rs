//! Exact minimum-cost rectangular assignment: the shortest-augmenting-path form of the Hungarian
//! method with potentials (Kuhn–Munkres as refined by Jonker and Volgenant), O(rows² × cols).
//! Fine for the course's batches of tens to a few thousand; city scale needs the sparse solver.

/// Assigns every row to a distinct column minimising the summed cost. Requires `rows <= cols`
/// and finite costs; returns `assignment[row] = col`.
pub(crate) fn solve(rows: usize, cols: usize, cost: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    debug_assert!(
        rows <= cols,
        "transpose before calling: rows must not exceed cols"
    );
    // 1-based arrays with a sentinel column 0, as in the classic formulation.
    let mut row_potential = vec![0.0_f64; rows + 1];
    let mut col_potential = vec![0.0_f64; cols + 1];
    let mut row_of_col = vec![0_usize; cols + 1];
    let mut previous_col = vec![0_usize; cols + 1];
    let mut min_slack = vec![f64::INFINITY; cols + 1];
    let mut visited = vec![false; cols + 1];

    for row in 1..=rows {
        row_of_col[0] = row;
        let mut col = 0;
        min_slack.fill(f64::INFINITY);
        visited.fill(false);
        loop {
            visited[col] = true;
            let current_row = row_of_col[col];
            let mut delta = f64::INFINITY;
            let mut next_col = 0;
            for j in 1..=cols {
                if visited[j] {
                    continue;
                }
                let slack =
                    cost(current_row - 1, j - 1) - row_potential[current_row] - col_potential[j];
                if slack < min_slack[j] {
                    min_slack[j] = slack;
                    previous_col[j] = col;
                }
                if min_slack[j] < delta {
                    delta = min_slack[j];
                    next_col = j;
                }
            }
            if next_col == 0 {
                // Only reachable with non-finite costs; callers guarantee finite ones.
                break;
            }
            for j in 0..=cols {
                if visited[j] {
                    row_potential[row_of_col[j]] += delta;
                    col_potential[j] -= delta;
                } else {
                    min_slack[j] -= delta;
                }
            }
            col = next_col;
            if row_of_col[col] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        while col != 0 {
            let prev = previous_col[col];
            row_of_col[col] = row_of_col[prev];
            col = prev;
        }
    }

    let mut assignment = vec![usize::MAX; rows];
    for col in 1..=cols {
        if row_of_col[col] != 0 {
            assignment[row_of_col[col] - 1] = col - 1;
        }
    }
    assignment
}
