//! Double-entry postings. Every movement is a transaction whose entries sum to zero
//! (debits positive, credits negative); the constructors below are the only way to make
//! one, so an unbalanced posting cannot be built. A wallet is a liability of the festival
//! towards its holder: money into a wallet is a credit to it, and its balance is minus
//! the sum of its entries.

use uuid::Uuid;

festival_platform::text_enum! {
    /// What a ledger account holds.
    AccountKind {
        Wallet = "WALLET",
        VendorRevenue = "VENDOR_REVENUE",
        CashDrawer = "CASH_DRAWER",
        CardClearing = "CARD_CLEARING",
        Corrections = "CORRECTIONS",
        Float = "FLOAT",
        PlatformFees = "PLATFORM_FEES",
        RefundsPayable = "REFUNDS_PAYABLE",
        Safe = "SAFE",
        CashImbalance = "CASH_IMBALANCE",
        Donations = "DONATIONS",
        Promo = "PROMO",
        OfflineLoss = "OFFLINE_LOSS",
        OnlineClearing = "ONLINE_CLEARING",
        Chargebacks = "CHARGEBACKS",
        Unclaimed = "UNCLAIMED",
        Bank = "BANK",
        Credit = "CREDIT",
        StaffTokens = "STAFF_TOKENS",
    }
}

festival_platform::text_enum! {
    /// The brief's TransactionType.
    TxKind {
        TopUp = "TOPUP",
        Payment = "PAYMENT",
        Refund = "REFUND",
        Transfer = "TRANSFER",
        Correction = "CORRECTION",
    }
}

/// One leg: `amount` is positive for a debit, negative for a credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub account: Uuid,
    pub amount: i64,
}

/// A balanced movement of `amount` (> 0) concerning `wallet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub kind: TxKind,
    pub amount: i64,
    pub wallet: Uuid,
    /// How the wallet's balance changes (its holder's view).
    pub wallet_change: i64,
    pub entries: Vec<Entry>,
}

/// `change` > 0 debits `up` and credits `down`; < 0 the other way round.
fn signed(up: Uuid, down: Uuid, change: i64) -> (i64, Vec<Entry>) {
    let amount = change.unsigned_abs().min(i64::MAX as u64) as i64;
    let entries = if change > 0 { debit_credit(up, down, amount) } else { debit_credit(down, up, amount) };
    (amount, entries)
}

/// Amounts are positive minor units; the handlers refuse others before a posting is made.
fn debit_credit(debit: Uuid, credit: Uuid, amount: i64) -> Vec<Entry> {
    debug_assert!(amount > 0 && debit != credit);
    vec![Entry { account: debit, amount }, Entry { account: credit, amount: -amount }]
}

impl Posting {
    /// Money in at a cashier's desk: the drawer (or the card terminal's clearing
    /// account) is debited, the wallet credited.
    pub fn top_up(wallet: Uuid, till: Uuid, amount: i64) -> Self {
        Self { kind: TxKind::TopUp, amount, wallet, wallet_change: amount, entries: debit_credit(till, wallet, amount) }
    }

    /// A charge at a terminal: the wallet is debited, the vendor's revenue credited.
    pub fn payment(wallet: Uuid, vendor_revenue: Uuid, amount: i64) -> Self {
        Self {
            kind: TxKind::Payment,
            amount,
            wallet,
            wallet_change: -amount,
            entries: debit_credit(wallet, vendor_revenue, amount),
        }
    }

    /// A charge a terminal made offline, booked in full for the vendor: the wallet pays
    /// `paid` (what it held, at most `amount`), the festival's offline-loss account the
    /// rest.
    pub fn offline_payment(wallet: Uuid, loss: Uuid, vendor_revenue: Uuid, amount: i64, paid: i64) -> Self {
        debug_assert!(amount > 0 && (0..=amount).contains(&paid));
        let mut entries = Vec::with_capacity(3);
        if paid > 0 {
            entries.push(Entry { account: wallet, amount: paid });
        }
        if amount > paid {
            entries.push(Entry { account: loss, amount: amount - paid });
        }
        entries.push(Entry { account: vendor_revenue, amount: -amount });
        Self { kind: TxKind::Payment, amount, wallet, wallet_change: -paid, entries }
    }

    /// An online top-up taken back (the card refunded, or disputed): the wallet gives
    /// back what it holds (`taken`), the chargebacks account the rest, and the money
    /// leaves through the clearing account it came in by.
    pub fn reversal(wallet: Uuid, clearing: Uuid, chargebacks: Uuid, amount: i64, taken: i64) -> Self {
        debug_assert!(amount > 0 && (0..=amount).contains(&taken));
        let mut entries = Vec::with_capacity(3);
        if taken > 0 {
            entries.push(Entry { account: wallet, amount: taken });
        }
        if amount > taken {
            entries.push(Entry { account: chargebacks, amount: amount - taken });
        }
        entries.push(Entry { account: clearing, amount: -amount });
        Self { kind: TxKind::Refund, amount, wallet, wallet_change: -taken, entries }
    }

    /// Unspent money loaded online, paid back to its card at the close-out: out of the
    /// wallet through the clearing account it came in by (a refusal by payments books the
    /// same entries back, as [`Posting::void`] does).
    pub fn card_refund(wallet: Uuid, clearing: Uuid, amount: i64) -> Self {
        Self {
            kind: TxKind::Refund,
            amount,
            wallet,
            wallet_change: -amount,
            entries: debit_credit(wallet, clearing, amount),
        }
    }

    /// Non-refundable credit granted to a wallet: the festival's issuing account (PROMO,
    /// STAFF_TOKENS) is debited, the wallet's own CREDIT account credited. The holder's
    /// money (the balance) does not change.
    pub fn grant(wallet: Uuid, credit: Uuid, issuer: Uuid, amount: i64) -> Self {
        Self { kind: TxKind::TopUp, amount, wallet, wallet_change: 0, entries: debit_credit(issuer, credit, amount) }
    }

    /// A wallet's credit moved to another wallet's credit (a claimed box-office wallet's,
    /// merged into its new holder's): no money moves.
    pub fn credit_move(wallet: Uuid, from: Uuid, to: Uuid, amount: i64) -> Self {
        Self { kind: TxKind::Transfer, amount, wallet, wallet_change: 0, entries: debit_credit(from, to, amount) }
    }

    /// From one wallet to another of the same festival.
    pub fn transfer(from: Uuid, to: Uuid, amount: i64) -> Self {
        Self {
            kind: TxKind::Transfer,
            amount,
            wallet: from,
            wallet_change: -amount,
            entries: debit_credit(from, to, amount),
        }
    }

    /// An organiser's correction against the festival's corrections account:
    /// `change` > 0 credits the wallet, < 0 debits it.
    pub fn correction(wallet: Uuid, corrections: Uuid, change: i64) -> Self {
        // A wallet is credit-normal: money into it is a credit.
        let (amount, entries) = signed(corrections, wallet, change);
        Self { kind: TxKind::Correction, amount, wallet, wallet_change: change, entries }
    }

    /// A fee the festival charges a wallet (a replacement wristband): a payment to its
    /// fees account.
    pub fn fee(wallet: Uuid, fees: Uuid, amount: i64) -> Self {
        Self {
            kind: TxKind::Payment,
            amount,
            wallet,
            wallet_change: -amount,
            entries: debit_credit(wallet, fees, amount),
        }
    }

    /// A sale voided: the charge's own entries booked back (an offline charge's loss
    /// share returns to the loss account, not to the wallet).
    pub fn void(charge: &Posting) -> Self {
        Self {
            kind: TxKind::Refund,
            amount: charge.amount,
            wallet: charge.wallet,
            wallet_change: -charge.wallet_change,
            entries: charge.entries.iter().map(|e| Entry { account: e.account, amount: -e.amount }).collect(),
        }
    }

    /// A wallet's whole `balance` paid out to its holder's bank account: owed to them
    /// (refunds payable) less the `fee` the festival keeps.
    pub fn payout(wallet: Uuid, payable: Uuid, fees: Uuid, balance: i64, fee: i64) -> Self {
        debug_assert!(balance > 0 && (0..=balance).contains(&fee));
        let mut entries = vec![Entry { account: wallet, amount: balance }];
        if balance > fee {
            entries.push(Entry { account: payable, amount: -(balance - fee) });
        }
        if fee > 0 {
            entries.push(Entry { account: fees, amount: -fee });
        }
        Self { kind: TxKind::Refund, amount: balance, wallet, wallet_change: -balance, entries }
    }

    /// A wallet's whole balance given to one of the festival's accounts: donated, or
    /// unclaimed by the deadline.
    pub fn release(wallet: Uuid, to: Uuid, balance: i64) -> Self {
        Self {
            kind: TxKind::Transfer,
            amount: balance,
            wallet,
            wallet_change: -balance,
            entries: debit_credit(wallet, to, balance),
        }
    }

    /// Cash moved between two of the festival's own accounts (the safe, a drawer): no
    /// wallet is concerned (its id is the nil id, its change 0).
    pub fn cash_move(from: Uuid, to: Uuid, amount: i64) -> Self {
        Self {
            kind: TxKind::Transfer,
            amount,
            wallet: Uuid::nil(),
            wallet_change: 0,
            entries: debit_credit(to, from, amount),
        }
    }

    /// A drawer's count against the ledger: `difference` (counted less expected) > 0 is
    /// cash found, < 0 cash missing, booked against the cash imbalance account.
    pub fn cash_difference(drawer: Uuid, imbalance: Uuid, difference: i64) -> Self {
        // A drawer is debit-normal: cash found is a debit.
        let (amount, entries) = signed(drawer, imbalance, difference);
        Self { kind: TxKind::Correction, amount, wallet: Uuid::nil(), wallet_change: 0, entries }
    }

    /// A bank transfer that came back (a closed account, a wrong name): what was owed
    /// (`from`: refunds payable, or the bank account once the file was paid) returns to
    /// the wallet.
    pub fn payout_returned(wallet: Uuid, from: Uuid, amount: i64) -> Self {
        Self {
            kind: TxKind::Correction,
            amount,
            wallet,
            wallet_change: amount,
            entries: debit_credit(from, wallet, amount),
        }
    }

    /// Whether the entries sum to zero (always, by construction; the database checks it
    /// again at commit).
    pub fn balances(&self) -> bool {
        self.entries.iter().map(|e| i128::from(e.amount)).sum::<i128>() == 0
    }

    /// The wallet's balance after the posting, from its balance before.
    pub fn wallet_after(&self, before: i64) -> Option<i64> {
        before.checked_add(self.wallet_change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Uuid {
        Uuid::new_v4()
    }

    /// A wallet's balance as the ledger sees it: minus the sum of its entries.
    fn wallet_balance(postings: &[Posting], wallet: Uuid) -> i64 {
        -postings.iter().flat_map(|p| &p.entries).filter(|e| e.account == wallet).map(|e| e.amount).sum::<i64>()
    }

    #[test]
    fn every_posting_balances_and_moves_the_wallet_by_its_change() {
        let (wallet, other, till, vendor, corrections) = (id(), id(), id(), id(), id());
        let postings = vec![
            Posting::top_up(wallet, till, 5_000),
            Posting::payment(wallet, vendor, 1_250),
            Posting::transfer(wallet, other, 750),
            Posting::correction(wallet, corrections, 100),
            Posting::correction(wallet, corrections, -40),
            Posting::offline_payment(wallet, corrections, vendor, 500, 500),
            Posting::reversal(wallet, till, corrections, 300, 200),
            Posting::fee(wallet, corrections, 200),
            Posting::void(&Posting::payment(wallet, vendor, 70)),
        ];
        assert!(postings.iter().all(Posting::balances));
        let changes: i64 = postings.iter().map(|p| p.wallet_change).sum();
        assert_eq!(wallet_balance(&postings, wallet), changes);
        assert_eq!(changes, 5_000 - 1_250 - 750 + 100 - 40 - 500 - 200 - 200 + 70);
        assert_eq!(wallet_balance(&postings, other), 750);
        assert_eq!(wallet_balance(&postings, vendor), 1_750 - 70, "a vendor's revenue is credit-normal too");
        assert!(postings.iter().all(|p| p.amount > 0));
    }

    #[test]
    fn an_offline_charge_the_wallet_cannot_cover_is_paid_in_full_from_the_loss_account() {
        let (wallet, loss, vendor) = (id(), id(), id());
        let short = Posting::offline_payment(wallet, loss, vendor, 800, 300);
        assert!(short.balances());
        assert_eq!(short.wallet_change, -300);
        assert_eq!(short.entries.len(), 3);
        let empty = Posting::offline_payment(wallet, loss, vendor, 800, 0);
        assert!(empty.balances());
        assert_eq!(empty.entries.iter().filter(|e| e.account == wallet).count(), 0, "no zero entry");
        assert_eq!(Posting::offline_payment(wallet, loss, vendor, 800, 800).entries.len(), 2);
    }

    #[test]
    fn cash_moves_and_count_differences_balance_and_touch_no_wallet() {
        let (safe, drawer, imbalance) = (id(), id(), id());
        let postings = [
            Posting::cash_move(safe, drawer, 10_000),
            Posting::cash_difference(drawer, imbalance, -250),
            Posting::cash_difference(drawer, imbalance, 40),
        ];
        assert!(postings.iter().all(|p| p.balances() && p.wallet_change == 0 && p.wallet == Uuid::nil()));
        // Debit-normal: the drawer holds minus what wallet_balance computes.
        assert_eq!(-wallet_balance(&postings, drawer), 10_000 - 250 + 40);
        assert_eq!(-wallet_balance(&postings, imbalance), 250 - 40, "missing cash is the imbalance account's debit");
    }

    #[test]
    fn a_void_books_back_exactly_what_its_charge_booked() {
        let (wallet, loss, vendor) = (id(), id(), id());
        let charge = Posting::offline_payment(wallet, loss, vendor, 800, 300);
        let void = Posting::void(&charge);
        assert!(void.balances());
        assert_eq!(void.kind, TxKind::Refund);
        assert_eq!(void.wallet_change, 300, "the wallet gets back what it paid, not the loss account's share");
        let both = [charge, void];
        for account in [wallet, loss, vendor] {
            assert_eq!(wallet_balance(&both, account), 0, "{account} is back where it was");
        }
    }

    #[test]
    fn a_payout_empties_the_wallet_into_what_is_owed_and_the_fee() {
        let (wallet, payable, fees) = (id(), id(), id());
        let p = Posting::payout(wallet, payable, fees, 1_000, 150);
        assert!(p.balances());
        assert_eq!(p.wallet_change, -1_000);
        assert_eq!(wallet_balance(std::slice::from_ref(&p), payable), 850);
        assert_eq!(wallet_balance(std::slice::from_ref(&p), fees), 150);
        assert_eq!(Posting::payout(wallet, payable, fees, 1_000, 0).entries.len(), 2, "no zero fee entry");
        assert_eq!(Posting::payout(wallet, payable, fees, 150, 150).entries.len(), 2, "no zero payout entry");
        let gift = Posting::release(wallet, fees, 400);
        assert!(gift.balances());
        assert_eq!(gift.wallet_change, -400);
    }

    #[test]
    fn a_wallet_cannot_overflow_its_balance() {
        let p = Posting::top_up(id(), id(), 10);
        assert_eq!(p.wallet_after(i64::MAX), None);
        assert_eq!(p.wallet_after(5), Some(15));
    }
}
