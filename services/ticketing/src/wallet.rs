//! Wallet passes; each pass's QR code is the ticket's own credential, so a gate scans the
//! phone like the printed ticket.
//!
//! - Google Wallet: a "save to Google Wallet" link carrying the ticket as an event-ticket
//!   object in a JWT signed offline with the issuer's service-account key (RS256), no
//!   call to Google needed.
//! - Apple Wallet: a `.pkpass`, a zip of `pass.json`, icons, `manifest.json` (their SHA-1
//!   digests, as Apple asks) and `signature`, the manifest's detached PKCS #7 signature
//!   by the pass type's certificate with Apple's WWDR intermediate attached.

use chrono::{DateTime, Utc};
use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::{DecodePem, Encode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use uuid::Uuid;
use x509_cert::Certificate;

use crate::config::WalletConfig;

/// Where a save link points.
pub const GOOGLE_SAVE_URL: &str = "https://pay.google.com/gp/v/save/";

/// A Google Wallet issuer: its id and the service account that signs for it.
pub struct GoogleWallet {
    issuer_id: String,
    service_account: String,
    key: EncodingKey,
}

/// What a pass shows.
pub struct Pass<'a> {
    pub festival_id: Uuid,
    pub festival: &'a str,
    pub category: &'a str,
    pub ticket_id: Uuid,
    pub credential: &'a str,
    pub starts: Option<DateTime<Utc>>,
    pub ends: Option<DateTime<Utc>>,
}

impl GoogleWallet {
    /// The configured issuer; none when `wallet.google_issuer_id` is empty.
    pub fn from_config(config: &WalletConfig) -> Result<Option<Self>, String> {
        if config.google_issuer_id.is_empty() {
            return Ok(None);
        }
        if !config.google_issuer_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err("google_issuer_id: the issuer's number from the Google Pay & Wallet console".into());
        }
        if !config.google_service_account.contains('@') {
            return Err("google_service_account: the service account's email".into());
        }
        // jsonwebtoken only unwraps the PEM (a public key would pass); parse it for real.
        let pem = config.google_private_key.expose();
        rsa_private_key(pem).map_err(|e| format!("google_private_key: {e}"))?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("google_private_key: not an RSA private key in PEM ({e})"))?;
        Ok(Some(Self {
            issuer_id: config.google_issuer_id.clone(),
            service_account: config.google_service_account.clone(),
            key,
        }))
    }

    /// The save link of `pass`, signed at `now`.
    pub fn save_url(&self, pass: &Pass<'_>, now: DateTime<Utc>) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = google_claims(&self.issuer_id, &self.service_account, pass, now);
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)?;
        Ok(format!("{GOOGLE_SAVE_URL}{jwt}"))
    }
}

/// The JWT's claims: one event-ticket class per festival, one object per ticket (ids are
/// `<issuer>.<uuid>`, which Google keeps unique per issuer).
pub fn google_claims(issuer_id: &str, service_account: &str, pass: &Pass<'_>, now: DateTime<Utc>) -> Value {
    let text = |value: &str| json!({"defaultValue": {"language": "en", "value": value}});
    let class_id = format!("{issuer_id}.{}", pass.festival_id);
    let mut class = json!({
        "id": class_id,
        "issuerName": pass.festival,
        "eventName": text(pass.festival),
        "reviewStatus": "UNDER_REVIEW",
    });
    if let (Some(start), Some(end)) = (pass.starts, pass.ends) {
        class["dateTime"] = json!({"start": wallet_date(start), "end": wallet_date(end)});
    }
    json!({
        "iss": service_account,
        "aud": "google",
        "typ": "savetowallet",
        "iat": now.timestamp(),
        "origins": [],
        "payload": {
            "eventTicketClasses": [class],
            "eventTicketObjects": [{
                "id": format!("{issuer_id}.{}", pass.ticket_id),
                "classId": class_id,
                "state": "ACTIVE",
                "ticketType": text(pass.category),
                "ticketNumber": pass.ticket_id.to_string(),
                "barcode": {"type": "QR_CODE", "value": pass.credential, "alternateText": pass.ticket_id.to_string()},
            }],
        },
    })
}

/// The wallets passes are offered for, as configured.
#[derive(Default)]
pub struct Wallets {
    pub google: Option<GoogleWallet>,
    pub apple: Option<AppleWallet>,
}

impl Wallets {
    pub fn from_config(config: &WalletConfig) -> Result<Self, String> {
        Ok(Self { google: GoogleWallet::from_config(config)?, apple: AppleWallet::from_config(config)? })
    }
}

/// An Apple Wallet pass type: its ids, its certificate and key, and Apple's WWDR
/// intermediate certificate.
pub struct AppleWallet {
    pass_type_id: String,
    team_id: String,
    signer: rsa::pkcs1v15::SigningKey<Sha256>,
    certificate: Certificate,
    wwdr: Certificate,
}

impl AppleWallet {
    /// The configured pass type; none when `wallet.apple_pass_type_id` is empty. The key
    /// must be the certificate's.
    pub fn from_config(config: &WalletConfig) -> Result<Option<Self>, String> {
        if config.apple_pass_type_id.is_empty() {
            return Ok(None);
        }
        if config.apple_team_id.is_empty() {
            return Err("apple_team_id: the team of the pass type".into());
        }
        let key = rsa_private_key(config.apple_private_key.expose()).map_err(|e| format!("apple_private_key: {e}"))?;
        let certificate = Certificate::from_pem(config.apple_certificate.as_bytes())
            .map_err(|e| format!("apple_certificate: not a certificate in PEM ({e})"))?;
        let wwdr = Certificate::from_pem(config.apple_wwdr_certificate.as_bytes())
            .map_err(|e| format!("apple_wwdr_certificate: not a certificate in PEM ({e})"))?;
        let public = key.to_public_key().to_public_key_der().map_err(|e| e.to_string())?;
        let certified = certificate.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
        if public.as_bytes() != certified.as_slice() {
            return Err("apple_private_key: not the key of apple_certificate".into());
        }
        if wwdr == certificate || certificate.tbs_certificate.issuer != wwdr.tbs_certificate.subject {
            return Err("apple_wwdr_certificate: not the issuer of apple_certificate".into());
        }
        let now = std::time::SystemTime::now();
        let validity = &certificate.tbs_certificate.validity;
        if now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time() {
            return Err("apple_certificate: not valid now (renew it in the Apple developer account)".into());
        }
        Ok(Some(Self {
            pass_type_id: config.apple_pass_type_id.clone(),
            team_id: config.apple_team_id.clone(),
            signer: rsa::pkcs1v15::SigningKey::new(key),
            certificate,
            wwdr,
        }))
    }

    /// The `.pkpass` of `pass`.
    pub fn pkpass(&self, pass: &Pass<'_>) -> Result<Vec<u8>, String> {
        let pass_json = serde_json::to_vec_pretty(&apple_pass(&self.pass_type_id, &self.team_id, pass))
            .map_err(|e| e.to_string())?;
        let icon = crate::document::icon_png(29).map_err(|e| e.to_string())?;
        let icon2x = crate::document::icon_png(58).map_err(|e| e.to_string())?;
        let files: Vec<(&str, &[u8])> = vec![("pass.json", &pass_json), ("icon.png", &icon), ("icon@2x.png", &icon2x)];
        let manifest = manifest(&files);
        let signature = self.sign_detached(&manifest)?;
        let mut all = files;
        all.push(("manifest.json", &manifest));
        all.push(("signature", &signature));
        Ok(stored_zip(&all))
    }

    /// The manifest's detached PKCS #7 (CMS) SignedData, DER: SHA-256, RSA PKCS #1 v1.5,
    /// the pass certificate and the WWDR intermediate attached.
    fn sign_detached(&self, manifest: &[u8]) -> Result<Vec<u8>, String> {
        let err = |e: cms::builder::Error| format!("signing the pass: {e:?}");
        let content = EncapsulatedContentInfo { econtent_type: const_oid::db::rfc5911::ID_DATA, econtent: None };
        let digest = Sha256::digest(manifest);
        let sha256 = AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ID_SHA_256, parameters: None };
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: self.certificate.tbs_certificate.issuer.clone(),
            serial_number: self.certificate.tbs_certificate.serial_number.clone(),
        });
        let mut signer_info =
            SignerInfoBuilder::new(&self.signer, sid, sha256.clone(), &content, Some(&digest[..])).map_err(err)?;
        // Wallet refuses a pass whose signature carries no signing time.
        signer_info.add_signed_attribute(cms::builder::create_signing_time_attribute().map_err(err)?).map_err(err)?;
        let mut builder = SignedDataBuilder::new(&content);
        builder
            .add_digest_algorithm(sha256)
            .map_err(err)?
            .add_certificate(CertificateChoices::Certificate(self.certificate.clone()))
            .map_err(err)?
            .add_certificate(CertificateChoices::Certificate(self.wwdr.clone()))
            .map_err(err)?
            .add_signer_info::<_, rsa::pkcs1v15::Signature>(signer_info)
            .map_err(err)?;
        builder.build().map_err(err)?.to_der().map_err(|e| e.to_string())
    }
}

/// An RSA private key in PEM, PKCS #8 or PKCS #1.
fn rsa_private_key(pem: &str) -> Result<rsa::RsaPrivateKey, String> {
    rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an RSA private key in PEM ({e})"))
}

/// A date as Wallet reads it: RFC 3339 to the second.
fn wallet_date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `pass.json` of an event ticket.
pub fn apple_pass(pass_type_id: &str, team_id: &str, pass: &Pass<'_>) -> Value {
    let ticket = pass.ticket_id.to_string();
    let mut json = json!({
        "formatVersion": 1,
        "passTypeIdentifier": pass_type_id,
        "teamIdentifier": team_id,
        "serialNumber": ticket,
        "organizationName": pass.festival,
        "description": format!("{}: {}", pass.festival, pass.category),
        "eventTicket": {
            "primaryFields": [{"key": "event", "label": "Festival", "value": pass.festival}],
            "secondaryFields": [{"key": "ticket", "label": "Ticket", "value": pass.category}],
            "auxiliaryFields": [{"key": "number", "label": "Number", "value": ticket}],
        },
        "barcodes": [{"format": "PKBarcodeFormatQR", "message": pass.credential, "messageEncoding": "iso-8859-1"}],
    });
    if let Some(start) = pass.starts {
        json["relevantDate"] = json!(wallet_date(start));
    }
    if let Some(end) = pass.ends {
        json["expirationDate"] = json!(wallet_date(end));
    }
    json
}

/// `manifest.json`: each file's SHA-1, hex (what Wallet checks before the signature).
fn manifest(files: &[(&str, &[u8])]) -> Vec<u8> {
    let digests: serde_json::Map<String, Value> = files
        .iter()
        .map(|(name, data)| {
            let hex: String = sha1::Sha1::digest(data).iter().map(|b| format!("{b:02x}")).collect();
            ((*name).to_owned(), Value::String(hex))
        })
        .collect();
    serde_json::to_vec(&Value::Object(digests)).unwrap_or_default()
}

/// A zip archive of `files`, stored (Wallet reads stored or deflated entries; passes are
/// small). Written by hand: local headers, the central directory, its end record.
fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    for (name, data) in files {
        let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(data);
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        // Local file header: version 1.0, no flags, stored, 1980-01-01 00:00.
        le32(&mut out, 0x0403_4b50);
        for x in [10, 0, 0, 0, 0x21] {
            le16(&mut out, x);
        }
        for x in [crc, size, size] {
            le32(&mut out, x);
        }
        le16(&mut out, name_len);
        le16(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // Its central directory entry.
        le32(&mut central, 0x0201_4b50);
        for x in [20, 10, 0, 0, 0, 0x21] {
            le16(&mut central, x);
        }
        for x in [crc, size, size] {
            le32(&mut central, x);
        }
        for x in [name_len, 0, 0, 0, 0] {
            le16(&mut central, x);
        }
        le32(&mut central, 0);
        le32(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let central_size = u32::try_from(central.len()).unwrap_or(u32::MAX);
    let entries = u16::try_from(files.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&central);
    le32(&mut out, 0x0605_4b50);
    for x in [0, 0, entries, entries] {
        le16(&mut out, x);
    }
    le32(&mut out, central_size);
    le32(&mut out, central_offset);
    le16(&mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_carries_the_credential_as_its_qr_code_under_the_issuer_s_ids() {
        let (festival_id, ticket_id) = (Uuid::from_u128(7), Uuid::from_u128(9));
        let pass = Pass {
            festival_id,
            festival: "Festival",
            category: "Weekend",
            ticket_id,
            credential: "AQEB",
            starts: None,
            ends: None,
        };
        let claims = google_claims("3388000000022", "tickets@example.iam.gserviceaccount.com", &pass, Utc::now());
        assert_eq!((claims["aud"].as_str(), claims["typ"].as_str()), (Some("google"), Some("savetowallet")));
        let object = &claims["payload"]["eventTicketObjects"][0];
        assert_eq!(object["id"], format!("3388000000022.{ticket_id}"));
        assert_eq!(object["classId"], format!("3388000000022.{festival_id}"));
        assert_eq!(
            (object["barcode"]["type"].as_str(), object["barcode"]["value"].as_str()),
            (Some("QR_CODE"), Some("AQEB"))
        );
        assert_eq!(claims["payload"]["eventTicketClasses"][0]["id"], format!("3388000000022.{festival_id}"));
    }

    #[test]
    fn a_misconfigured_issuer_is_refused_at_start() {
        let config = |id: &str, account: &str, key: &str| WalletConfig {
            google_issuer_id: id.into(),
            google_service_account: account.into(),
            google_private_key: festival_platform::config::Secret::new(key),
            ..WalletConfig::default()
        };
        assert!(GoogleWallet::from_config(&config("", "", "")).expect("off").is_none());
        assert!(GoogleWallet::from_config(&config("33x", "a@b", "")).is_err());
        assert!(GoogleWallet::from_config(&config("3388", "nobody", "")).is_err());
        assert!(GoogleWallet::from_config(&config("3388", "a@b", "-----BEGIN PRIVATE KEY-----\nnope\n")).is_err());
        let public = include_str!("../tests/fixtures/google-wallet-test-key.pub.pem");
        assert!(GoogleWallet::from_config(&config("3388", "a@b", public)).is_err(), "a public key cannot sign");
        let private = include_str!("../tests/fixtures/google-wallet-test-key.pem");
        assert!(GoogleWallet::from_config(&config("3388", "a@b", private)).expect("valid").is_some());
    }
}
