//! QR codes as pure data and SVG: a ticket's credential (ticketing), an authenticator
//! app's enrolment URI (identity). Raster and print forms stay with their one user.

use qrcode::{Color, EcLevel, QrCode};

/// Modules of white around the code, as the QR standard asks.
pub const QUIET: usize = 4;

/// A QR code as dark/light modules, row by row.
pub struct Matrix {
    pub width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    /// Error correction M (15 %): a scratched phone screen or a creased print still scans.
    pub fn of(text: &str) -> Result<Self, qrcode::types::QrError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
        let width = code.width();
        let dark = code.to_colors().into_iter().map(|c| c == Color::Dark).collect();
        Ok(Self { width, dark })
    }

    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }

    /// The dark modules' coordinates, row by row.
    pub fn dark_modules(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.width).flat_map(move |y| (0..self.width).map(move |x| (x, y))).filter(|&(x, y)| self.is_dark(x, y))
    }
}

/// The QR code as SVG: one path, one unit per module, quiet zone included.
pub fn svg(m: &Matrix) -> String {
    let size = m.width + 2 * QUIET;
    let mut path = String::with_capacity(m.width * m.width * 4);
    for (x, y) in m.dark_modules() {
        path.push_str(&format!("M{} {}h1v1h-1z", x + QUIET, y + QUIET));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>\n"
    )
}
