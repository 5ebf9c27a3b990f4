//! A raster drawing backend for plotters, so `--timeline x.png` draws the
//! same chart as the SVG: plotters' own bitmap backend needs a TrueType font
//! (a system font, or a font file shipped and registered at run time); this
//! one draws text with the public-domain 8x8 glyphs of `font8x8`, built in,
//! and writes the image with the `png` crate.

use std::path::{Path, PathBuf};

use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// Glyph cell of `font8x8`, in pixels.
const GLYPH: i32 = 8;

/// An RGB image that plotters draws on; `present` writes it as a PNG file.
pub struct PixelBackend {
    path: PathBuf,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl PixelBackend {
    pub fn new(path: &Path, (width, height): (u32, u32)) -> Self {
        Self {
            path: path.to_path_buf(),
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
        }
    }

    /// Writes the image as an 8-bit RGB PNG.
    fn write_png(&self) -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(&self.path)?);
        let mut encoder = png::Encoder::new(file, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&self.rgb)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    }

    /// Pixels per glyph pixel for a font size: captions twice as large.
    fn scale(size: f64) -> i32 {
        if size >= 18.0 {
            2
        } else {
            1
        }
    }
}

impl DrawingBackend for PixelBackend {
    type ErrorType = std::io::Error;

    fn get_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.write_png().map_err(DrawingErrorKind::DrawingError)
    }

    fn draw_pixel(
        &mut self,
        (x, y): BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return Ok(());
        }
        let at = (y as usize * self.width as usize + x as usize) * 3;
        let alpha = color.alpha.clamp(0.0, 1.0);
        let (r, g, b) = color.rgb;
        for (offset, channel) in [r, g, b].into_iter().enumerate() {
            let old = f64::from(self.rgb[at + offset]);
            self.rgb[at + offset] = (old + (f64::from(channel) - old) * alpha).round() as u8;
        }
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let scale = Self::scale(style.size());
        let chars = text.chars().count() as i32;
        Ok(((chars * GLYPH * scale) as u32, (GLYPH * scale) as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        (x, y): BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let scale = Self::scale(style.size());
        let color = style.color();
        let width = text.chars().count() as i32 * GLYPH * scale;
        let height = GLYPH * scale;
        let anchor = style.anchor();
        let left = match anchor.h_pos {
            HPos::Left => x,
            HPos::Center => x - width / 2,
            HPos::Right => x - width,
        };
        let top = match anchor.v_pos {
            VPos::Top => y,
            VPos::Center => y - height / 2,
            VPos::Bottom => y - height,
        };
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or([0; 8]);
            let x0 = left + i as i32 * GLYPH * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..GLYPH {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            self.draw_pixel(
                                (x0 + col * scale + dx, top + row as i32 * scale + dy),
                                color,
                            )?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
