//! Driver ratings: a whole number of stars from 1 to 5, and the aggregate shown for a driver.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Stars(u8);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rating must be a whole number from 1 to 5, got {0}")]
pub struct StarsOutOfRange(pub i64);

impl Stars {
    pub fn new(value: i64) -> Result<Self, StarsOutOfRange> {
        match u8::try_from(value) {
            Ok(v @ 1..=5) => Ok(Self(v)),
            _ => Err(StarsOutOfRange(value)),
        }
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Stars {
    type Error = StarsOutOfRange;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Stars> for u8 {
    fn from(value: Stars) -> u8 {
        value.0
    }
}

/// Count and mean of a driver's ratings; `average` is `None` until the first rating.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatingSummary {
    pub count: u64,
    pub average: Option<f64>,
}

impl RatingSummary {
    pub fn from_totals(count: u64, sum_of_stars: u64) -> Self {
        let average = (count > 0).then(|| sum_of_stars as f64 / count as f64);
        Self { count, average }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_are_one_to_five() {
        assert!(Stars::new(0).is_err());
        assert!(Stars::new(6).is_err());
        assert!(Stars::new(-1).is_err());
        assert_eq!(Stars::new(5).map(Stars::get), Ok(5));
        assert!(serde_json::from_str::<Stars>("6").is_err());
    }

    #[test]
    fn summary_averages() {
        assert_eq!(RatingSummary::from_totals(0, 0).average, None);
        assert_eq!(RatingSummary::from_totals(4, 14).average, Some(3.5));
    }
}
