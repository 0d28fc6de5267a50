//! QR images of trace codes for labels: SVG for print shops and pages, PNG
//! for label printers that take only bitmaps. The QR carries the consumer
//! page's address, so any phone camera opens it without an app.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the symbol, as the QR standard requires.
const QUIET_ZONE: usize = 4;

/// The dark/light modules of the symbol for `content`, quiet zone included.
/// Level M survives about 15 % damage: labels on produce get scuffed.
fn modules(content: &str) -> Result<(usize, Vec<bool>), qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(content.as_bytes(), EcLevel::M)?;
    let inner = code.width();
    let size = inner + 2 * QUIET_ZONE;
    let mut dark = vec![false; size * size];
    for (i, c) in code.to_colors().into_iter().enumerate() {
        if c == Color::Dark {
            let (x, y) = (i % inner + QUIET_ZONE, i / inner + QUIET_ZONE);
            dark[y * size + x] = true;
        }
    }
    Ok((size, dark))
}

/// An SVG of the symbol, one module per user unit: runs of dark modules in
/// a row become one rectangle of the path, which keeps the file small.
pub fn svg(content: &str) -> Result<String, qrcode::types::QrError> {
    let (size, dark) = modules(content)?;
    let mut path = String::new();
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if dark[y * size + x] {
                let start = x;
                while x < size && dark[y * size + x] {
                    x += 1;
                }
                path.push_str(&format!("M{start} {y}h{}v1h-{}z", x - start, x - start));
            } else {
                x += 1;
            }
        }
    }
    Ok(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##
    ))
}

/// A greyscale PNG with `scale` pixels per module.
pub fn png(content: &str, scale: usize) -> Result<Vec<u8>, QrImageError> {
    let (size, dark) = modules(content)?;
    let scale = scale.clamp(1, 32);
    let side = size * scale;
    let mut pixels = vec![255u8; side * side];
    for y in 0..side {
        for x in 0..side {
            if dark[(y / scale) * size + x / scale] {
                pixels[y * side + x] = 0;
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum QrImageError {
    #[error("the content does not fit a QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("encoding the PNG failed: {0}")]
    Png(#[from] png::EncodingError),
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://trace.example/t/7K3MQ9T2ABCDEFGH";

    /// The module matrix read back from the PNG's pixels.
    fn decode_png(bytes: &[u8], scale: usize) -> (usize, Vec<bool>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let side = info.width as usize;
        let size = side / scale;
        let dark = (0..size * size)
            .map(|i| buf[(i / size) * scale * side + (i % size) * scale] == 0)
            .collect();
        (size, dark)
    }

    #[test]
    fn png_pixels_are_the_symbol_modules() {
        let (size, dark) = modules(URL).unwrap();
        let bytes = png(URL, 3).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(decode_png(&bytes, 3), (size, dark.clone()));
        // The quiet zone is light and the finder pattern's corner is dark.
        assert!(!dark[0] && dark[QUIET_ZONE * size + QUIET_ZONE]);
    }

    #[test]
    fn svg_draws_exactly_the_dark_modules() {
        let (size, dark) = modules(URL).unwrap();
        let svg = svg(URL).unwrap();
        let d = svg.split("<path d=\"").nth(1).unwrap().split('"').next().unwrap();
        let mut drawn = vec![false; size * size];
        for rect in d.split('M').filter(|r| !r.is_empty()) {
            let (xy, rest) = rect.split_once('h').unwrap();
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let w: usize = rest.split('v').next().unwrap().parse().unwrap();
            for i in x..x + w {
                assert!(!drawn[y * size + i], "module drawn twice");
                drawn[y * size + i] = true;
            }
        }
        assert_eq!(drawn, dark);
    }

    #[test]
    fn content_too_long_for_any_qr_is_an_error() {
        assert!(svg(&"9".repeat(8000)).is_err());
    }
}
