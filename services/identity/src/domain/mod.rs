//! Identity's rules, free of I/O: what a valid email, password and profile are, which
//! roles can be granted, how sessions and keys age.

pub mod audit;
pub mod badge;
pub mod bearer;
pub mod device;
pub mod email_token;
pub mod mfa;
pub mod oauth;
pub use festival_platform::email;
pub mod password;
pub mod profile;
pub mod session;
