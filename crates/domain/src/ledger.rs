//! The double-entry ledger of the product's money, in integer minor units (poisha).
//!
//! Every movement is a [`Transaction`] of [`Entry`]s whose amounts sum to zero: money is never
//! made or lost, only moved between accounts. An entry's amount is what flows *into* its account
//! (negative: out of it). The balances of riders, drivers and the platform are sums of entries
//! alone ([`balances`]). The constructors below are the only way to make a transaction, and each
//! one balances by construction:
//!
//! - [`hold`] / [`release`]: a card authorization placed or let go (`rider_hold:<id>` against
//!   `provider:holds`): no money moved yet, but the ledger shows what is held;
//! - [`charge`]: money taken from the rider (`rider:<id>`, negative), split between the driver's
//!   earnings (`driver:<id>`) and the platform's commission (`platform:commission`);
//! - [`refund`]: money given back to the rider, taken back from the driver and the platform in the
//!   proportions of the charge it refunds.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::AccountId;
use crate::trip::Minor;

/// Who an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LedgerAccount {
    /// What a rider paid (negative: paid out of their card) or got back.
    Rider(AccountId),
    /// What is held on a rider's card, authorized and not yet captured or released.
    RiderHold(AccountId),
    /// A driver's earnings.
    Driver(AccountId),
    /// The platform's commission.
    Commission,
    /// The provider's side of the holds.
    ProviderHolds,
}

impl fmt::Display for LedgerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rider(id) => write!(f, "rider:{}", id.as_uuid()),
            Self::RiderHold(id) => write!(f, "rider_hold:{}", id.as_uuid()),
            Self::Driver(id) => write!(f, "driver:{}", id.as_uuid()),
            Self::Commission => f.write_str("platform:commission"),
            Self::ProviderHolds => f.write_str("provider:holds"),
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a ledger account: {0:?}")]
pub struct UnknownLedgerAccount(pub String);

impl FromStr for LedgerAccount {
    type Err = UnknownLedgerAccount;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownLedgerAccount(s.to_owned());
        match s {
            "platform:commission" => return Ok(Self::Commission),
            "provider:holds" => return Ok(Self::ProviderHolds),
            _ => {}
        }
        let (kind, id) = s.split_once(':').ok_or_else(unknown)?;
        let id = AccountId::from_uuid(uuid::Uuid::parse_str(id).map_err(|_| unknown())?);
        match kind {
            "rider" => Ok(Self::Rider(id)),
            "rider_hold" => Ok(Self::RiderHold(id)),
            "driver" => Ok(Self::Driver(id)),
            _ => Err(unknown()),
        }
    }
}

/// What a transaction records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Hold,
    Release,
    /// A completed trip's fare.
    Fare,
    /// A cancellation or no-show fee.
    Fee,
    Refund,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hold => "hold",
            Self::Release => "release",
            Self::Fare => "fare",
            Self::Fee => "fee",
            Self::Refund => "refund",
        }
    }
}

impl FromStr for TransactionKind {
    type Err = UnknownLedgerAccount;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Hold,
            Self::Release,
            Self::Fare,
            Self::Fee,
            Self::Refund,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| UnknownLedgerAccount(s.to_owned()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub account: LedgerAccount,
    /// Into the account (negative: out of it).
    pub amount: i64,
}

/// A balanced set of entries (made only by the constructors of this module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    kind: TransactionKind,
    entries: Vec<Entry>,
}

impl Transaction {
    pub fn kind(&self) -> TransactionKind {
        self.kind
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Rebuilds a stored transaction, refusing one that does not balance.
    pub fn from_entries(kind: TransactionKind, entries: Vec<Entry>) -> Result<Self, Unbalanced> {
        let sum: i128 = entries.iter().map(|e| i128::from(e.amount)).sum();
        if sum != 0 {
            return Err(Unbalanced(sum));
        }
        Ok(Self { kind, entries })
    }

    fn of(kind: TransactionKind, entries: &[(LedgerAccount, i64)]) -> Self {
        Self {
            kind,
            entries: entries
                .iter()
                .filter(|(_, amount)| *amount != 0)
                .map(|&(account, amount)| Entry { account, amount })
                .collect(),
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the entries do not balance: they sum to {0}")]
pub struct Unbalanced(pub i128);

/// Amounts of the ledger stay far below `i64::MAX` (a trip costs at most a few million poisha);
/// the conversion saturates rather than wraps.
fn signed(amount: Minor) -> i64 {
    i64::try_from(amount).unwrap_or(i64::MAX)
}

/// `amount` authorized on the rider's card.
pub fn hold(rider: AccountId, amount: Minor) -> Transaction {
    let a = signed(amount);
    Transaction::of(
        TransactionKind::Hold,
        &[
            (LedgerAccount::RiderHold(rider), a),
            (LedgerAccount::ProviderHolds, -a),
        ],
    )
}

/// A hold of `amount` let go (captured, cancelled or expired).
pub fn release(rider: AccountId, amount: Minor) -> Transaction {
    let a = signed(amount);
    Transaction::of(
        TransactionKind::Release,
        &[
            (LedgerAccount::RiderHold(rider), -a),
            (LedgerAccount::ProviderHolds, a),
        ],
    )
}

/// The platform's share of `amount` at `commission_bps` (basis points), rounded to the nearest
/// poisha (half up).
pub fn commission_of(amount: Minor, commission_bps: u32) -> Minor {
    let bps = u128::from(commission_bps.min(10_000));
    let share = (u128::from(amount) * bps + 5_000) / 10_000;
    Minor::try_from(share).unwrap_or(amount)
}

/// `amount` taken from the rider: the driver earns it less the commission. With no driver (a
/// fee for a trip nobody was assigned to) the platform keeps it all.
pub fn charge(
    kind: TransactionKind,
    rider: AccountId,
    driver: Option<AccountId>,
    amount: Minor,
    commission_bps: u32,
) -> Transaction {
    let a = signed(amount);
    let commission = match driver {
        Some(_) => signed(commission_of(amount, commission_bps)),
        None => a,
    };
    let mut entries = vec![
        (LedgerAccount::Rider(rider), -a),
        (LedgerAccount::Commission, commission),
    ];
    if let Some(driver) = driver {
        entries.push((LedgerAccount::Driver(driver), a - commission));
    }
    Transaction::of(kind, &entries)
}

/// `amount` of an earlier charge of `charged`, of which `refunded` was given back already, given
/// back to the rider: taken from the driver and the platform in the charge's proportions. The
/// platform's part is the difference of its shares of the cumulative refunds, so refunds in any
/// number of parts take back exactly the charge's commission, never a poisha more. The caller
/// guarantees `refunded + amount ≤ charged` (refunds never exceed captures).
pub fn refund(
    rider: AccountId,
    driver: Option<AccountId>,
    charged: Minor,
    refunded: Minor,
    amount: Minor,
    commission_bps: u32,
) -> Transaction {
    let before = refunded.min(charged);
    let after = before.saturating_add(amount).min(charged);
    let a = signed(after - before);
    let commission = match driver {
        Some(_) if charged > 0 => {
            let total_commission = u128::from(commission_of(charged, commission_bps));
            // The platform's share of the first `x` refunded, rounded half up.
            let share = |x: Minor| {
                (u128::from(x) * total_commission + u128::from(charged) / 2) / u128::from(charged)
            };
            i64::try_from(share(after) - share(before)).unwrap_or(a)
        }
        _ => a,
    };
    let mut entries = vec![
        (LedgerAccount::Rider(rider), a),
        (LedgerAccount::Commission, -commission),
    ];
    if let Some(driver) = driver {
        entries.push((LedgerAccount::Driver(driver), -(a - commission)));
    }
    Transaction::of(TransactionKind::Refund, &entries)
}

/// Every account's balance, from the entries alone.
pub fn balances<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> BTreeMap<LedgerAccount, i64> {
    let mut balances = BTreeMap::new();
    for entry in entries {
        *balances.entry(entry.account).or_insert(0) += entry.amount;
    }
    balances.retain(|_, balance| *balance != 0);
    balances
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(n: u128) -> AccountId {
        AccountId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn sum(t: &Transaction) -> i64 {
        t.entries().iter().map(|e| e.amount).sum()
    }

    #[test]
    fn a_trip_holds_charges_splits_and_refunds() {
        let (rider, driver) = (id(1), id(2));
        let book = [
            hold(rider, 24_000),
            release(rider, 24_000),
            charge(TransactionKind::Fare, rider, Some(driver), 20_000, 2_000),
            refund(rider, Some(driver), 20_000, 0, 5_000, 2_000),
        ];
        for t in &book {
            assert_eq!(sum(t), 0, "{t:?}");
        }
        let all: Vec<Entry> = book.iter().flat_map(|t| t.entries().to_vec()).collect();
        let b = balances(&all);
        assert_eq!(b.get(&LedgerAccount::Rider(rider)), Some(&-15_000));
        assert_eq!(b.get(&LedgerAccount::Driver(driver)), Some(&12_000));
        assert_eq!(b.get(&LedgerAccount::Commission), Some(&3_000));
        assert_eq!(b.get(&LedgerAccount::RiderHold(rider)), None, "released");
    }

    #[test]
    fn a_fee_without_a_driver_is_the_platforms() {
        let t = charge(TransactionKind::Fee, id(1), None, 5_000, 2_000);
        assert_eq!(sum(&t), 0);
        assert_eq!(
            balances(t.entries()).get(&LedgerAccount::Commission),
            Some(&5_000)
        );
    }

    #[test]
    fn accounts_round_trip_through_their_names() {
        for account in [
            LedgerAccount::Rider(id(7)),
            LedgerAccount::RiderHold(id(7)),
            LedgerAccount::Driver(id(8)),
            LedgerAccount::Commission,
            LedgerAccount::ProviderHolds,
        ] {
            assert_eq!(account.to_string().parse::<LedgerAccount>(), Ok(account));
        }
        assert!("driver:nope".parse::<LedgerAccount>().is_err());
        assert!("bank:1".parse::<LedgerAccount>().is_err());
        assert_eq!(
            Transaction::from_entries(
                TransactionKind::Fare,
                vec![Entry {
                    account: LedgerAccount::Commission,
                    amount: 1
                }]
            ),
            Err(Unbalanced(1))
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Hold(u64),
        Release(u64),
        Charge(u64, bool),
        Refund(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..5_000_000_u64).prop_map(Op::Hold),
            (1..5_000_000_u64).prop_map(Op::Release),
            (1..5_000_000_u64, any::<bool>()).prop_map(|(a, d)| Op::Charge(a, d)),
            (1..5_000_000_u64, 0..5_000_000_u64).prop_map(|(c, r)| Op::Refund(c, r.min(c))),
        ]
    }

    proptest! {
        /// After any sequence of operations every transaction balances, so all entries sum to
        /// zero; a whole refund takes back exactly what the charge gave each side.
        #[test]
        fn every_sequence_of_operations_balances(
            ops in proptest::collection::vec(op(), 0..60),
            bps in 0..10_000_u32,
        ) {
            let (rider, driver) = (id(1), id(2));
            let mut entries = Vec::new();
            for op in ops {
                let t = match op {
                    Op::Hold(a) => hold(rider, a),
                    Op::Release(a) => release(rider, a),
                    Op::Charge(a, with_driver) => {
                        charge(TransactionKind::Fare, rider, with_driver.then_some(driver), a, bps)
                    }
                    Op::Refund(charged, r) => refund(rider, Some(driver), charged, 0, r, bps),
                };
                prop_assert_eq!(sum(&t), 0);
                entries.extend(t.entries().iter().copied());
            }
            let total: i64 = balances(&entries).values().sum();
            prop_assert_eq!(total, 0);
        }

        #[test]
        fn a_whole_refund_undoes_its_charge(amount in 1..5_000_000_u64, bps in 0..10_000_u32) {
            let (rider, driver) = (id(1), id(2));
            let c = charge(TransactionKind::Fare, rider, Some(driver), amount, bps);
            let r = refund(rider, Some(driver), amount, 0, amount, bps);
            let entries: Vec<Entry> = c.entries().iter().chain(r.entries()).copied().collect();
            prop_assert!(balances(&entries).is_empty(), "{:?}", balances(&entries));
        }

        /// Refunds in parts that add up to the charge undo it exactly, rounding included.
        #[test]
        fn refunds_in_parts_undo_their_charge(
            amount in 1..5_000_000_u64,
            cuts in proptest::collection::vec(0.0..1.0_f64, 0..6),
            bps in 0..10_000_u32,
        ) {
            let (rider, driver) = (id(1), id(2));
            let mut points: Vec<u64> = cuts.iter().map(|c| (c * amount as f64) as u64).collect();
            points.push(amount);
            points.sort_unstable();
            let mut entries: Vec<Entry> =
                charge(TransactionKind::Fare, rider, Some(driver), amount, bps).entries().to_vec();
            let mut refunded = 0;
            for point in points {
                let part = point - refunded;
                let t = refund(rider, Some(driver), amount, refunded, part, bps);
                prop_assert_eq!(sum(&t), 0);
                entries.extend(t.entries().iter().copied());
                refunded = point;
            }
            prop_assert!(balances(&entries).is_empty(), "{:?}", balances(&entries));
        }
    }
}
