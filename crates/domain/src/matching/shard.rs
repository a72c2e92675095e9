//! Geographic shards: the map is cut into cells, and each cell belongs to one of `shards` shards
//! by a fixed hash, so every process computes the same shard for the same place. A shard says who
//! pairs a *rider* (the instance holding its lease); drivers are candidates wherever they are.
//!
//! - the planar course protocol: square cells of side `cell` (`shard_of`);
//! - product trips on the globe: H3 cells of a resolution (`shard_of_place`; resolution 7 cells
//!   are about 5 km², a few dozen to hundreds per city).

use h3o::Resolution;

use crate::geo::{LatLng, Point};

/// The shard of the cell containing `point`. `shards` must be at least 1, `cell` positive.
pub fn shard_of(point: &Point, cell: f64, shards: u32) -> u32 {
    // Coordinates are bounded (±1e6), so the cell indices fit comfortably in i64.
    let cx = (point.x() / cell).floor() as i64;
    let cy = (point.y() / cell).floor() as i64;
    spread(
        (cx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (cy as u64).rotate_left(32),
        shards,
    )
}

/// The shard of the H3 cell (at `resolution`, 0–15; beyond 15 means 15) containing `place`.
pub fn shard_of_place(place: &LatLng, resolution: u8, shards: u32) -> u32 {
    let resolution = Resolution::try_from(resolution.min(15)).unwrap_or(Resolution::Fifteen);
    // A valid `LatLng` is always a valid H3 coordinate; fall back to one shard rather than panic.
    match h3o::LatLng::new(place.lat(), place.lng()) {
        Ok(at) => spread(u64::from(at.to_cell(resolution)), shards),
        Err(_) => 0,
    }
}

/// SplitMix64's finaliser over a cell's bits, reduced to a shard: stable across processes and
/// platforms, and neighbouring cells land in unrelated shards.
fn spread(cell: u64, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let mut z = cell;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % u64::from(shards)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> Point {
        Point::new(x, y).expect("valid")
    }

    #[test]
    fn one_cell_one_shard_and_every_shard_used() {
        assert_eq!(shard_of(&p(10.0, 10.0), 50.0, 1), 0);
        assert_eq!(
            shard_of(&p(1.0, 1.0), 50.0, 4),
            shard_of(&p(49.9, 49.9), 50.0, 4)
        );
        let mut used = [false; 4];
        for x in 0..20 {
            for y in 0..20 {
                used[shard_of(&p(f64::from(x) * 50.0, f64::from(y) * 50.0), 50.0, 4) as usize] =
                    true;
            }
        }
        assert!(used.iter().all(|u| *u), "{used:?}");
        assert!(shard_of(&p(-1e6, 1e6), 0.5, 7) < 7);
    }

    #[test]
    fn a_place_has_one_shard_and_a_city_uses_every_shard() {
        let place = |lat, lng| LatLng::new(lat, lng).expect("valid");
        let dhaka = place(23.7808, 90.4067);
        assert_eq!(shard_of_place(&dhaka, 6, 1), 0);
        assert_eq!(
            shard_of_place(&dhaka, 6, 8),
            shard_of_place(&place(23.78081, 90.40671), 6, 8),
            "a metre away: the same cell"
        );
        // A 30 km square of Dhaka at resolution 6 covers every one of 8 shards.
        let mut used = [false; 8];
        for i in 0..30 {
            for j in 0..30 {
                let at = place(23.65 + f64::from(i) * 0.009, 90.3 + f64::from(j) * 0.01);
                used[shard_of_place(&at, 6, 8) as usize] = true;
            }
        }
        assert!(used.iter().all(|u| *u), "{used:?}");
        assert!(shard_of_place(&place(-90.0, 180.0), 20, 5) < 5);
    }
}
