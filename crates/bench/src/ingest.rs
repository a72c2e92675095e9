//! `rickshaw bench ingest`: driver position updates flowing into the matcher's pool (and its geo
//! index) while ticks run, as in the matching service: a consumer applies the updates in batches
//! under the pool's lock, and the ticker takes the same lock to add a batch of riders and pair
//! them. Reported: the updates applied per second, and for every update the delay from its
//! creation until it was applied — from then on the matcher sees it — as p50 / p99 / max.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::course::RideRequestDraft;
use domain::matching::{Limits, Strategy};
use domain::{CarNumber, DriverReport, PersonName, Point, RideRequest, RideRequestId, Timestamp};
use matching::Pool;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::city::{City, CityKind};
use crate::matching::build_index;

#[derive(Clone, Debug)]
pub struct IngestBench {
    pub city: CityKind,
    pub side: f64,
    pub drivers: usize,
    pub riders_per_tick: usize,
    pub tick: Duration,
    pub duration: Duration,
    /// Updates per second to offer; 0: as fast as the consumer takes them.
    pub rate: u64,
    /// Updates per batch handed to the consumer (what one bus fetch would bring).
    pub batch: usize,
    pub strategy: Strategy,
    pub limits: Limits,
    pub seed: u64,
}

impl Default for IngestBench {
    fn default() -> Self {
        Self {
            city: CityKind::Uniform,
            side: 30_000.0,
            drivers: 15_000,
            riders_per_tick: 10_000,
            tick: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            rate: 100_000,
            batch: 256,
            strategy: Strategy::Optimal,
            limits: Limits {
                candidates: 8,
                max_pickup: 3_000.0,
                pricing_rounds: 0,
                ..Limits::default()
            },
            seed: 2026,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct IngestReport {
    pub drivers: usize,
    pub riders_per_tick: usize,
    pub offered_rate: u64,
    pub updates: u64,
    pub seconds: f64,
    pub updates_per_sec: f64,
    pub visible_p50_ms: f64,
    pub visible_p99_ms: f64,
    pub visible_max_ms: f64,
    pub ticks: usize,
    pub tick_p50_ms: f64,
    pub tick_max_ms: f64,
    pub matched_per_tick: f64,
}

struct Update {
    driver: u32,
    position: Point,
    created: Instant,
}

fn lock(pool: &Mutex<Pool>) -> std::sync::MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

impl IngestBench {
    pub fn run(&self, mut progress: impl FnMut(&str)) -> IngestReport {
        let city = City {
            kind: self.city,
            side: self.side,
        };
        let (_, start_positions) = city.generate(0, self.drivers, self.seed);
        let cell = build_index(&start_positions, self.side).cell_size();
        let names: Arc<Vec<(PersonName, CarNumber)>> = Arc::new(
            (0..self.drivers)
                .map(|i| {
                    (
                        PersonName::parse(&format!("driver-{i}")).expect("valid name"),
                        CarNumber::parse(&format!("CAR-{i}")).expect("valid car"),
                    )
                })
                .collect(),
        );
        let epoch = Instant::now();
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let stamp = move |at: Instant| {
            Timestamp::from_millis(epoch_ms + at.duration_since(epoch).as_millis() as i64)
        };
        let report_of = |names: &[(PersonName, CarNumber)], driver: u32, position: Point, at| {
            let (name, car) = &names[driver as usize];
            DriverReport {
                driver: name.clone(),
                car_number: car.clone(),
                position,
                reported_at: at,
            }
        };

        let pool = Arc::new(Mutex::new(Pool::new(cell)));
        {
            let mut pool = lock(&pool);
            let now = stamp(Instant::now());
            for (i, p) in start_positions.iter().enumerate() {
                pool.add_driver(report_of(&names, i as u32, *p, now), now);
            }
        }
        progress(&format!(
            "{} drivers indexed; offering {} updates/s for {:?} with {} riders a tick every {:?}",
            self.drivers,
            if self.rate == 0 {
                "as many".to_owned()
            } else {
                self.rate.to_string()
            },
            self.duration,
            self.riders_per_tick,
            self.tick
        ));

        let deadline = Instant::now() + self.duration;
        let (tx, rx) = mpsc::sync_channel::<Vec<Update>>(16);

        // The position stream.
        let producer = {
            let (city, seed, batch, rate, drivers) =
                (city, self.seed, self.batch.max(1), self.rate, self.drivers);
            let mut positions = start_positions.clone();
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed ^ 0xA5A5);
                let started = Instant::now();
                let mut sent = 0_u64;
                // No drivers, no positions to stream.
                while drivers > 0 && Instant::now() < deadline {
                    if rate > 0 {
                        let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                    }
                    let updates: Vec<Update> = (0..batch)
                        .map(|_| {
                            let driver = rng.random_range(0..drivers);
                            positions[driver] = city.nudge(&mut rng, positions[driver], 30.0);
                            Update {
                                driver: driver as u32,
                                position: positions[driver],
                                created: Instant::now(),
                            }
                        })
                        .collect();
                    sent += updates.len() as u64;
                    if tx.send(updates).is_err() {
                        break;
                    }
                }
            })
        };

        // The consumer: what the matching service's `DriverAvailable` consumer does.
        let consumer = {
            let pool = pool.clone();
            let names = names.clone();
            thread::spawn(move || {
                let mut delays_us: Vec<u32> = Vec::new();
                let mut applied = 0_u64;
                let started = Instant::now();
                while let Ok(updates) = rx.recv() {
                    let reports: Vec<(DriverReport, Instant)> = updates
                        .iter()
                        .map(|u| {
                            (
                                report_of(&names, u.driver, u.position, stamp(u.created)),
                                u.created,
                            )
                        })
                        .collect();
                    {
                        let mut pool = lock(&pool);
                        let now = stamp(Instant::now());
                        for (report, _) in reports.iter().cloned() {
                            pool.add_driver(report, now);
                        }
                    }
                    let visible = Instant::now();
                    applied += reports.len() as u64;
                    delays_us.extend(reports.iter().map(|(_, created)| {
                        visible
                            .duration_since(*created)
                            .as_micros()
                            .min(u32::MAX as u128) as u32
                    }));
                }
                (applied, started.elapsed(), delays_us)
            })
        };

        // The ticker.
        let mut tick_times = Vec::new();
        let mut matched = 0_usize;
        let mut rng = SmallRng::seed_from_u64(self.seed ^ 0x5A5A);
        let mut next_request = 0_u64;
        let mut next_tick = Instant::now() + self.tick;
        while next_tick < deadline {
            if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            next_tick += self.tick;
            let now = stamp(Instant::now());
            let requests: Vec<RideRequest> = (0..self.riders_per_tick)
                .map(|_| {
                    next_request += 1;
                    RideRequest::new(
                        RideRequestId::from_uuid(uuid::Uuid::from_u128(u128::from(next_request))),
                        RideRequestDraft {
                            rider: PersonName::parse(&format!("rider-{next_request}"))
                                .expect("valid name"),
                            position: city.point(&mut rng, 0.7),
                            destination: city.point(&mut rng, 0.0),
                        },
                        now,
                    )
                })
                .collect();
            let started = Instant::now();
            // As the matching service does: the lock is held to add the riders and take the
            // snapshot, and again to apply the pairs, not while the batch is solved.
            let snapshot = {
                let mut pool = lock(&pool);
                for request in requests {
                    pool.add_rider(request, 0, now);
                }
                pool.snapshot(|_| true)
            };
            let proposed = snapshot.solve(self.strategy, self.limits);
            let outcome = lock(&pool).apply(proposed, now, 5_000, |_| true);
            tick_times.push(started.elapsed());
            matched += outcome.pairings.len();
            progress(&format!(
                "tick {}: {} pairs in {:.1} ms",
                outcome.tick,
                outcome.pairings.len(),
                started.elapsed().as_secs_f64() * 1e3
            ));
        }

        producer.join().expect("the producer does not panic");
        let (applied, took, mut delays) = consumer.join().expect("the consumer does not panic");
        delays.sort_unstable();
        tick_times.sort();
        let quantile = |q: f64| -> f64 {
            if delays.is_empty() {
                return 0.0;
            }
            let i = ((delays.len() as f64 - 1.0) * q).round() as usize;
            f64::from(delays[i]) / 1e3
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        IngestReport {
            drivers: self.drivers,
            riders_per_tick: self.riders_per_tick,
            offered_rate: self.rate,
            updates: applied,
            seconds: took.as_secs_f64(),
            updates_per_sec: applied as f64 / took.as_secs_f64().max(1e-9),
            visible_p50_ms: quantile(0.50),
            visible_p99_ms: quantile(0.99),
            visible_max_ms: quantile(1.0),
            ticks: tick_times.len(),
            tick_p50_ms: tick_times.get(tick_times.len() / 2).map_or(0.0, |d| ms(*d)),
            tick_max_ms: tick_times.last().map_or(0.0, |d| ms(*d)),
            matched_per_tick: matched as f64 / tick_times.len().max(1) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_applies_every_update_and_pairs_riders() {
        let bench = IngestBench {
            drivers: 500,
            riders_per_tick: 100,
            tick: Duration::from_millis(100),
            duration: Duration::from_millis(600),
            rate: 20_000,
            ..IngestBench::default()
        };
        let report = bench.run(|_| {});
        assert!(report.updates > 1_000, "{report:?}");
        assert!(report.ticks >= 3, "{report:?}");
        assert!(report.matched_per_tick > 0.0, "{report:?}");
        assert!(report.visible_p50_ms <= report.visible_p99_ms);
        assert!(report.visible_p99_ms <= report.visible_max_ms);
    }
}
