//! iCalendar (RFC 5545) output: the line-up and personal feeds. Times are written in UTC
//! (`...Z`), which every calendar application shows in its own zone; text is escaped and
//! lines folded at 75 octets.

use chrono::{DateTime, Utc};

/// One VEVENT.
pub struct Event<'a> {
    /// Globally unique and stable across exports, so calendar apps update in place.
    pub uid: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub summary: &'a str,
    pub location: &'a str,
    pub description: &'a str,
    pub cancelled: bool,
    pub last_modified: DateTime<Utc>,
}

/// A whole VCALENDAR with CRLF line endings.
pub fn calendar(name: &str, time_zone: &str, events: &[Event<'_>], now: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(256 + events.len() * 320);
    let mut line = |text: &str| fold_into(&mut out, text);
    line("BEGIN:VCALENDAR");
    line("VERSION:2.0");
    line("PRODID:-//Festival Platform//Program//EN");
    line("CALSCALE:GREGORIAN");
    line("METHOD:PUBLISH");
    line(&format!("X-WR-CALNAME:{}", escape(name)));
    line(&format!("X-WR-TIMEZONE:{time_zone}"));
    for e in events {
        line("BEGIN:VEVENT");
        line(&format!("UID:{}", e.uid));
        line(&format!("DTSTAMP:{}", utc(now)));
        line(&format!("LAST-MODIFIED:{}", utc(e.last_modified)));
        line(&format!("DTSTART:{}", utc(e.start)));
        line(&format!("DTEND:{}", utc(e.end)));
        line(&format!("SUMMARY:{}", escape(e.summary)));
        if !e.location.is_empty() {
            line(&format!("LOCATION:{}", escape(e.location)));
        }
        if !e.description.is_empty() {
            line(&format!("DESCRIPTION:{}", escape(e.description)));
        }
        line(if e.cancelled { "STATUS:CANCELLED" } else { "STATUS:CONFIRMED" });
        line("END:VEVENT");
    }
    line("END:VCALENDAR");
    out
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT escaping (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `text` as content lines of at most 75 octets, continuation lines starting
/// with a space, never splitting a UTF-8 character (§3.1).
fn fold_into(out: &mut String, text: &str) {
    let mut width = 0;
    for c in text.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn lines_are_folded_at_75_octets_on_character_boundaries() {
        let now = Utc.with_ymd_and_hms(2027, 6, 1, 12, 0, 0).unwrap();
        let long = "Sigur Rós – ".repeat(20);
        let event = Event {
            uid: "a@b".into(),
            start: now,
            end: now + chrono::Duration::hours(1),
            summary: &long,
            location: "Main; stage, north",
            description: "line one\nline two",
            cancelled: true,
            last_modified: now,
        };
        let text = calendar("Demo", "Europe/Paris", &[event], now);
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
        }
        assert!(text.contains("LOCATION:Main\\; stage\\, north\r\n"));
        assert!(text.contains("DESCRIPTION:line one\\nline two\r\n"));
        assert!(text.contains("DTSTART:20270601T120000Z\r\n"));
        assert!(text.contains("STATUS:CANCELLED\r\n"));
        let unfolded = text.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("SUMMARY:{}", long.replace(',', "\\,"))));
    }
}
