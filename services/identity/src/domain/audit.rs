//! What the security audit log records, and how little of the client's address it keeps.

use std::net::IpAddr;

festival_platform::text_enum! {
    /// A security-relevant action.
    AuditAction {
        SignIn = "SIGN_IN",
        SignInFailed = "SIGN_IN_FAILED",
        SignOutEverywhere = "SIGN_OUT_EVERYWHERE",
        RoleGranted = "ROLE_GRANTED",
        RoleRevoked = "ROLE_REVOKED",
        DeviceCreated = "DEVICE_CREATED",
        DevicePaired = "DEVICE_PAIRED",
        DeviceRevoked = "DEVICE_REVOKED",
        SigningKeyRotated = "SIGNING_KEY_ROTATED",
        SigningKeyRevoked = "SIGNING_KEY_REVOKED",
        AccountDeleted = "ACCOUNT_DELETED",
        MfaChallenged = "MFA_CHALLENGED",
        MfaEnabled = "MFA_ENABLED",
        MfaDisabled = "MFA_DISABLED",
        MfaFailed = "MFA_FAILED",
        RecoveryCodeUsed = "RECOVERY_CODE_USED",
        SecurityPolicyChanged = "SECURITY_POLICY_CHANGED",
        SessionRevoked = "SESSION_REVOKED",
        AccountDisabled = "ACCOUNT_DISABLED",
        AccountEnabled = "ACCOUNT_ENABLED",
        BadgeIssued = "BADGE_ISSUED",
        BadgeRevoked = "BADGE_REVOKED",
        PasswordResetRequested = "PASSWORD_RESET_REQUESTED",
        PasswordReset = "PASSWORD_RESET",
        EmailVerified = "EMAIL_VERIFIED",
        AccountCreated = "ACCOUNT_CREATED",
        OAuthLinked = "OAUTH_LINKED",
        OAuthUnlinked = "OAUTH_UNLINKED",
        OAuthFailed = "OAUTH_FAILED",
    }
}

/// The network a client is in, not the client: an IPv4 address's /24, an IPv6
/// address's /48 (an IPv4-mapped IPv6 address is treated as IPv4). Enough to see a
/// flood from one network, not to single out a household.
pub fn ip_prefix(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_network_is_kept() {
        assert_eq!(ip_prefix("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(ip_prefix("2001:db8:abcd:12:1:2:3:4".parse().unwrap()), "2001:db8:abcd::/48");
        assert_eq!(ip_prefix("::ffff:198.51.100.9".parse().unwrap()), "198.51.100.0/24", "IPv4-mapped");
    }
}
