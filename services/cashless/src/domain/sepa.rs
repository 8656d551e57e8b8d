//! SEPA credit transfer files (ISO 20022 pain.001.001.09, the version of the EPC's
//! current rulebook): one payment information block from the organiser's account, one
//! transfer per payout. Amounts are EUR cents; names arrive already in the SEPA
//! character set ([`super::payouts::sepa_text`]), so nothing here needs escaping beyond
//! what XML always does.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};

/// The organiser's account the transfers are paid from.
#[derive(Debug, Clone)]
pub struct Debtor<'a> {
    pub name: &'a str,
    pub iban: &'a str,
    /// Empty: "NOTPROVIDED" (SEPA needs no BIC).
    pub bic: &'a str,
}

/// One payout.
#[derive(Debug, Clone)]
pub struct Transfer<'a> {
    /// At most 35 characters; the bank hands it back on the statement.
    pub end_to_end_id: &'a str,
    pub amount_cents: i64,
    pub creditor_name: &'a str,
    pub creditor_iban: &'a str,
    /// At most 140 characters.
    pub remittance: &'a str,
}

/// EUR cents as the schema's decimal (two fraction digits).
pub fn euros(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// The whole document. `message_id` (at most 35 characters) also names the payment
/// information block; a bank refuses a second file with an id it has seen.
pub fn pain_001(
    message_id: &str,
    created: DateTime<Utc>,
    execution: NaiveDate,
    debtor: &Debtor<'_>,
    transfers: &[Transfer<'_>],
) -> String {
    let count = transfers.len();
    let total = euros(transfers.iter().map(|t| t.amount_cents).sum());
    let agent = if debtor.bic.is_empty() {
        "<Othr><Id>NOTPROVIDED</Id></Othr>".to_owned()
    } else {
        format!("<BICFI>{}</BICFI>", escape(debtor.bic))
    };
    let mut xml = String::with_capacity(600 + 400 * count);
    // Writing into a String cannot fail.
    let _ = write!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\">\n\
         <CstmrCdtTrfInitn>\n\
         <GrpHdr><MsgId>{id}</MsgId><CreDtTm>{created}</CreDtTm><NbOfTxs>{count}</NbOfTxs><CtrlSum>{total}</CtrlSum>\
         <InitgPty><Nm>{name}</Nm></InitgPty></GrpHdr>\n\
         <PmtInf><PmtInfId>{id}</PmtInfId><PmtMtd>TRF</PmtMtd><BtchBookg>true</BtchBookg><NbOfTxs>{count}</NbOfTxs>\
         <CtrlSum>{total}</CtrlSum><PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl></PmtTpInf>\
         <ReqdExctnDt><Dt>{execution}</Dt></ReqdExctnDt><Dbtr><Nm>{name}</Nm></Dbtr>\
         <DbtrAcct><Id><IBAN>{iban}</IBAN></Id></DbtrAcct><DbtrAgt><FinInstnId>{agent}</FinInstnId></DbtrAgt>\
         <ChrgBr>SLEV</ChrgBr>\n",
        id = escape(message_id),
        created = created.format("%Y-%m-%dT%H:%M:%SZ"),
        execution = execution.format("%Y-%m-%d"),
        name = escape(debtor.name),
        iban = escape(debtor.iban),
    );
    for t in transfers {
        let _ = writeln!(
            xml,
            "<CdtTrfTxInf><PmtId><EndToEndId>{e2e}</EndToEndId></PmtId><Amt><InstdAmt Ccy=\"EUR\">{amount}</InstdAmt></Amt>\
             <Cdtr><Nm>{name}</Nm></Cdtr><CdtrAcct><Id><IBAN>{iban}</IBAN></Id></CdtrAcct>\
             <RmtInf><Ustrd>{info}</Ustrd></RmtInf></CdtTrfTxInf>",
            e2e = escape(t.end_to_end_id),
            amount = euros(t.amount_cents),
            name = escape(t.creditor_name),
            iban = escape(t.creditor_iban),
            info = escape(t.remittance),
        );
    }
    xml.push_str("</PmtInf>\n</CstmrCdtTrfInitn>\n</Document>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cents_are_written_as_euros_with_two_decimals() {
        assert_eq!(euros(0), "0.00");
        assert_eq!(euros(5), "0.05");
        assert_eq!(euros(1_234_567), "12345.67");
    }

    #[test]
    fn a_file_counts_and_sums_its_transfers() {
        let debtor = Debtor { name: "Sommerfest GmbH", iban: "DE44500105175407324931", bic: "" };
        let transfers = [
            Transfer {
                end_to_end_id: "a1",
                amount_cents: 1_850,
                creditor_name: "Juergen Weiss",
                creditor_iban: "DE89370400440532013000",
                remittance: "Refund",
            },
            Transfer {
                end_to_end_id: "a2",
                amount_cents: 205,
                creditor_name: "O'Brien",
                creditor_iban: "FR1420041010050500013M02606",
                remittance: "Refund",
            },
        ];
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 17, 0, 0).unwrap();
        let xml = pain_001("batch1", at, NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(), &debtor, &transfers);
        assert_eq!(xml.matches("<NbOfTxs>2</NbOfTxs>").count(), 2, "{xml}");
        assert_eq!(xml.matches("<CtrlSum>20.55</CtrlSum>").count(), 2);
        assert!(xml.contains("<InstdAmt Ccy=\"EUR\">2.05</InstdAmt>"));
        assert!(xml.contains("<Nm>O&apos;Brien</Nm>"));
        assert!(xml.contains("<Othr><Id>NOTPROVIDED</Id></Othr>"));
        assert!(xml.contains("<CreDtTm>2026-12-02T17:00:00Z</CreDtTm>"));
    }
}
