//! Geographic shards for the planar course protocol: the plane is cut into square cells of side
//! `cell`, and each cell belongs to one of `shards` shards by a fixed hash, so every process
//! computes the same shard for the same point. Riders and drivers are only paired within a shard.

use crate::geo::Point;

/// The shard of the cell containing `point`. `shards` must be at least 1, `cell` positive.
pub fn shard_of(point: &Point, cell: f64, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    // Coordinates are bounded (±1e6), so the cell indices fit comfortably in i64.
    let cx = (point.x() / cell).floor() as i64;
    let cy = (point.y() / cell).floor() as i64;
    // SplitMix64 finaliser over the packed cell: stable across processes and platforms.
    let mut z = (cx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (cy as u64).rotate_left(32);
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
}
