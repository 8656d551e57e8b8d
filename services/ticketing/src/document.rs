//! A ticket as something to show or print: its QR code (SVG for screens, PNG for
//! wallets and mail) and a one-page PDF ticket. Pure functions of the ticket's data; the
//! QR code holds the signed credential and nothing else.

use festival_platform::qr::QUIET;
pub use festival_platform::qr::{Matrix, svg};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// PNG pixels per module.
const PNG_SCALE: usize = 8;

/// The QR code as an 8-bit greyscale PNG, 8 pixels per module.
pub fn png(m: &Matrix) -> Result<Vec<u8>, png::EncodingError> {
    let side = (m.width + 2 * QUIET) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (x, y) in m.dark_modules() {
        for dy in 0..PNG_SCALE {
            let row = ((y + QUIET) * PNG_SCALE + dy) * side;
            let start = row + (x + QUIET) * PNG_SCALE;
            pixels[start..start + PNG_SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).unwrap_or(u32::MAX);
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

/// A square icon of `side` pixels for a wallet pass: a dark ring on white, in the spirit
/// of a QR code's finder pattern (Apple Wallet requires an icon).
pub fn icon_png(side: u32) -> Result<Vec<u8>, png::EncodingError> {
    let n = side as usize;
    let (ring, hole) = (n / 7, 2 * n / 7);
    let pixels: Vec<u8> = (0..n * n)
        .map(|i| {
            let (x, y) = (i % n, i / n);
            let edge = x.min(y).min(n - 1 - x).min(n - 1 - y);
            if edge < ring || edge >= hole { 0 } else { 255 }
        })
        .collect();
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

/// What a printed ticket says.
pub struct Printed<'a> {
    pub festival: &'a str,
    pub category: &'a str,
    pub ticket_id: &'a str,
    /// E.g. "Valid on 2027-07-10" or "Valid every day".
    pub validity: &'a str,
}

/// A one-page A6 PDF ticket: the festival, the category, the validity, the ticket id and
/// the QR code drawn as vector squares (sharp at any printer resolution). Text is set in
/// the standard Helvetica font (no embedding), so characters outside Windows-1252 print
/// as "?".
pub fn pdf(ticket: &Printed<'_>, m: &Matrix) -> Vec<u8> {
    // A6 portrait in points.
    let (width, height) = (297.64_f32, 419.53_f32);
    let (catalog, pages, page, font, content) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4), Ref::new(5));
    let font_name = Name(b"F1");
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, width, height));
    p.parent(pages);
    p.contents(content);
    p.resources().fonts().pair(font_name, font);
    p.finish();
    pdf.type1_font(font).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));

    let mut c = Content::new();
    let line = |c: &mut Content, size: f32, y: f32, text: &str| {
        c.begin_text();
        c.set_font(font_name, size);
        c.next_line(24.0, y);
        c.show(Str(&win_ansi(text)));
        c.end_text();
    };
    line(&mut c, 16.0, height - 40.0, ticket.festival);
    line(&mut c, 12.0, height - 62.0, ticket.category);
    line(&mut c, 9.0, height - 80.0, ticket.validity);
    // The code: a square of `side` points, centred, with its quiet zone.
    let side = width - 48.0;
    let module = side / (m.width + 2 * QUIET) as f32;
    let (left, bottom) = (24.0, 48.0);
    c.set_fill_gray(0.0);
    for (x, y) in m.dark_modules() {
        let px = left + (x + QUIET) as f32 * module;
        // PDF's y axis goes up; the matrix's rows go down.
        let py = bottom + side - (y + QUIET + 1) as f32 * module;
        c.rect(px, py, module, module);
    }
    c.fill_nonzero();
    line(&mut c, 7.0, 28.0, &format!("Ticket {}", ticket.ticket_id));
    pdf.stream(content, &c.finish());
    pdf.finish()
}

/// Text as Windows-1252 bytes for the standard fonts: ASCII and Latin-1 letters as they
/// are, anything else as "?".
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|ch| match u32::from(ch) {
            code @ (0x20..=0x7e | 0xa0..=0xff) => u8::try_from(code).unwrap_or(b'?'),
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_outside_windows_1252_prints_as_a_question_mark() {
        assert_eq!(win_ansi("Fête – 東京"), b"F\xeate ? ??".to_vec());
    }

    #[test]
    fn a_credential_fits_one_code_with_a_quiet_zone_in_every_format() {
        let m = Matrix::of(&"A".repeat(142)).expect("fits");
        assert!(m.width >= 21 && m.width <= 177, "a QR version's width: {}", m.width);
        let svg = svg(&m);
        assert!(svg.starts_with("<?xml") && svg.contains(&format!("viewBox=\"0 0 {0} {0}\"", m.width + 8)));
        let png = png(&m).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
