//! Authentication and authorization every service performs itself (the gateway is not the
//! only wall): [`Verifier`] checks identity's EdDSA access tokens against its published
//! keys, and [`Principal::require`] answers "may this caller act at this festival?".
//! Where a paired device may act instead of a person (gates), [`GateCaller`] is either.

mod claims;
mod principal;
pub mod revocations;
mod verifier;

pub use claims::{
    ACCESS_TOKEN_USE, AMR_MFA, AccessClaims, DEVICE_TOKEN_USE, DeviceClaims, DeviceLevel, MembershipClaim, Role, amr,
};
pub use principal::{Device, GateCaller, Principal};
pub use verifier::{IdentityKeySource, KeySource, PublicKey, RevokedSessions, Verifier, bearer_token};
