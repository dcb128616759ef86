//! How the picture looks: the font, the palette and the colour of each
//! activity.

use pjp_core::observe::Activity;
use plotters::prelude::*;
use plotters::style::text_anchor::Pos;

/// The font family of every label; the viewer picks the face.
pub(crate) const FONT: &str = "sans-serif";

pub(crate) const PICK: RGBColor = RGBColor(76, 120, 168);
pub(crate) const EXECUTE: RGBColor = RGBColor(84, 162, 75);
pub(crate) const SAVE: RGBColor = RGBColor(245, 133, 24);
pub(crate) const BACKOFF: RGBColor = RGBColor(186, 176, 172);
/// Activities without a colour of their own.
pub(crate) const OTHER: RGBColor = RGBColor(178, 121, 162);
pub(crate) const IDLE: RGBColor = RGBColor(242, 242, 242);
pub(crate) const MARKER: RGBColor = RGBColor(214, 39, 40);
pub(crate) const RANGE: RGBColor = RGBColor(148, 103, 189);
pub(crate) const GRID: RGBColor = RGBColor(215, 215, 215);
/// The line between the lanes of two nodes.
pub(crate) const SEPARATOR: RGBColor = RGBColor(150, 150, 150);
/// Text.
pub(crate) const INK: RGBColor = RGBColor(40, 40, 40);

/// The colour of a span.
pub(crate) fn color(activity: Activity) -> RGBColor {
    match activity {
        Activity::Pick => PICK,
        Activity::Execute => EXECUTE,
        Activity::Save => SAVE,
        Activity::Backoff => BACKOFF,
        _ => OTHER,
    }
}

/// Text of `size` px in [`INK`], anchored at `anchor`.
pub(crate) fn text_style(size: u32, anchor: Pos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
        .color(&INK)
        .pos(anchor)
}
