//! Devices' rules: pairing codes (what an organiser reads out or shows as a QR code: the
//! kit's typed codes) and the proof a paired device signs to get a token.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How long a pairing code works.
pub const PAIRING_TTL: Duration = Duration::minutes(15);
/// How far a proof's signing time may be from the server's clock.
pub const PROOF_WINDOW: Duration = Duration::seconds(60);

/// The text a device signs with its key to ask for a token.
pub fn token_proof_message(device_id: Uuid, signed_at: i64) -> String {
    format!("festival-device-token:v1:{device_id}:{signed_at}")
}

/// A proof signed at `signed_at` is fresh at `now`: within [`PROOF_WINDOW`] either way.
pub fn proof_is_fresh(signed_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - signed_at).abs() <= PROOF_WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_fresh_for_a_minute_either_way() {
        let now = Utc::now();
        assert!(proof_is_fresh(now - Duration::seconds(60), now));
        assert!(proof_is_fresh(now + Duration::seconds(60), now));
        assert!(!proof_is_fresh(now - Duration::seconds(61), now));
        assert!(!proof_is_fresh(now + Duration::seconds(61), now));
    }
}
