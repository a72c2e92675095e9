//! Criterion benchmarks of the matcher's hot functions, on the synthetic cities of
//! `rickshaw bench matching` (10k riders × 15k drivers, 100 riders/km², k = 8, 3 km radius):
//! moving a driver in the geo index, one k-nearest query, building the candidate graph, solving
//! it, and the whole `optimal` and `nearest` ticks. `cargo bench -p bench`; results in
//! docs/BENCHMARKS.md.

use std::hint::black_box;

use bench::matching::build_index;
use bench::{City, CityKind, MatchingBench};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use domain::Point;
use domain::matching::assign::candidate_graph;
use domain::matching::sparse;
use domain::matching::{Strategy, assign_indexed};

fn city(kind: CityKind) -> (MatchingBench, City, Vec<Point>, Vec<Point>) {
    let bench = MatchingBench::default();
    let city = City {
        kind,
        side: bench.side_for(10_000),
    };
    let (riders, drivers) = city.generate(10_000, 15_000, 7);
    (bench, city, riders, drivers)
}

fn index_ops(c: &mut Criterion) {
    let (bench, city, riders, drivers) = city(CityKind::Uniform);
    let mut index = build_index(&drivers, city.side);
    let moves: Vec<(u32, Point)> = drivers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let to = Point::new((p.x() + 25.0).min(city.side), p.y()).expect("inside the city");
            (i as u32, to)
        })
        .collect();
    let mut next = 0;
    c.bench_function("index/upsert_move", |b| {
        b.iter(|| {
            let (driver, to) = moves[next % moves.len()];
            next += 1;
            black_box(index.upsert(driver, to));
        });
    });
    let mut found = Vec::new();
    let mut rider = 0;
    c.bench_function("index/nearest_k8", |b| {
        b.iter(|| {
            let at = riders[rider % riders.len()];
            rider += 1;
            index.nearest(at, 8, bench.limits.max_pickup, |_| true, &mut found);
            black_box(found.len());
        });
    });
}

fn tick_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_10k_x_15k");
    group.sample_size(10);
    for kind in [CityKind::Uniform, CityKind::Hotspots] {
        let (bench, city, riders, drivers) = city(kind);
        let index = build_index(&drivers, city.side);
        group.bench_function(format!("{kind}/candidate_graph"), |b| {
            b.iter(|| black_box(candidate_graph(&riders, &index, bench.limits).edge_count()));
        });
        let graph = candidate_graph(&riders, &index, bench.limits);
        group.bench_function(format!("{kind}/sparse_solve"), |b| {
            b.iter_batched(
                || graph.clone(),
                |graph| {
                    sparse::solve(&graph, index.slot_bound(), bench.limits.unmatched_cost()).len()
                },
                BatchSize::LargeInput,
            );
        });
        for strategy in [Strategy::Nearest, Strategy::Optimal] {
            group.bench_function(format!("{kind}/{strategy}"), |b| {
                b.iter(|| black_box(assign_indexed(&riders, &index, strategy, bench.limits).len()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, index_ops, tick_parts);
criterion_main!(benches);
