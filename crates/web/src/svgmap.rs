//! SVG maps drawn on the server from stored boundaries, so a phone gets a
//! clickable map without tiles, scripts or a mapping library.
//!
//! Boundaries (GCJ-02 lon/lat) are projected equirectangularly with the
//! longitude scaled by cos(mid-latitude), which keeps shapes true at a
//! province's size. Coordinates are simplified in pixel space and written as
//! relative moves in tenths of a pixel: the province page's 100 counties
//! then stay small enough to send on every visit.

use std::fmt::Write as _;

use geo::{BoundingRect, Coord, InteriorPoint, LineString, MapCoords, MultiPolygon, Rect, Simplify};

/// Width of the viewBox of a region map, in pixels.
pub const MAP_WIDTH: f64 = 800.0;
/// Width of the viewBox of a single outline (a county beside its list).
pub const OUTLINE_WIDTH: f64 = 240.0;
/// Margin inside the viewBox so border strokes are not clipped.
const PAD: f64 = 4.0;
/// Vertices closer than this (in pixels) to the simplified line are not
/// visible at the map's own scale; dropping them shrinks the page most.
const SIMPLIFY_PX: f64 = 0.8;
/// Borders of larger units are drawn thick, so they can be coarser.
const BORDER_SIMPLIFY_PX: f64 = 1.2;

/// Reads a stored GeoJSON geometry (Polygon or MultiPolygon).
pub fn parse_boundary(text: &str) -> Option<MultiPolygon<f64>> {
    let geometry = match text.parse::<geojson::GeoJson>().ok()? {
        geojson::GeoJson::Geometry(g) => g,
        geojson::GeoJson::Feature(f) => f.geometry?,
        geojson::GeoJson::FeatureCollection(_) => return None,
    };
    match geo::Geometry::<f64>::try_from(geometry).ok()? {
        geo::Geometry::Polygon(p) => Some(p.into()),
        geo::Geometry::MultiPolygon(m) => Some(m),
        _ => None,
    }
}

/// One clickable region on a map.
pub struct Area {
    pub code: String,
    pub name: String,
    pub shape: MultiPolygon<f64>,
    /// Areas of one group share a fill (the counties of one city).
    pub group: usize,
}

/// Fill classes cycled over groups; the stylesheet defines them.
const GROUP_CLASSES: usize = 6;

/// An equirectangular projection fitted to a bounding box.
struct Projection {
    min_lon: f64,
    max_lat: f64,
    kx: f64,
    scale: f64,
    height: f64,
}

impl Projection {
    fn fit(rect: Rect<f64>, width: f64) -> Option<Self> {
        let mid_lat = (rect.min().y + rect.max().y) / 2.0;
        let kx = mid_lat.to_radians().cos();
        let span_x = rect.width() * kx;
        let span_y = rect.height();
        if span_x <= 0.0 || span_y <= 0.0 || !span_x.is_finite() || !span_y.is_finite() {
            return None;
        }
        let scale = (width - 2.0 * PAD) / span_x;
        Some(Self {
            min_lon: rect.min().x,
            max_lat: rect.max().y,
            kx,
            scale,
            height: span_y * scale + 2.0 * PAD,
        })
    }

    fn point(&self, lon: f64, lat: f64) -> (f64, f64) {
        (
            PAD + (lon - self.min_lon) * self.kx * self.scale,
            PAD + (self.max_lat - lat) * self.scale,
        )
    }

    fn project(&self, shape: &MultiPolygon<f64>, epsilon: f64) -> MultiPolygon<f64> {
        shape
            .map_coords(|c| {
                let (x, y) = self.point(c.x, c.y);
                Coord { x, y }
            })
            .simplify(epsilon)
    }
}

fn bounds<'a>(shapes: impl Iterator<Item = &'a MultiPolygon<f64>>) -> Option<Rect<f64>> {
    shapes.filter_map(|s| s.bounding_rect()).reduce(|a, b| {
        Rect::new(
            Coord {
                x: a.min().x.min(b.min().x),
                y: a.min().y.min(b.min().y),
            },
            Coord {
                x: a.max().x.max(b.max().x),
                y: a.max().y.max(b.max().y),
            },
        )
    })
}

/// A map of `areas`, each a link to its region page with its name as a
/// tooltip and a label at an interior point, and `borders` (the outlines of
/// larger units) drawn on top without catching clicks. `None` when there is
/// nothing to draw.
pub fn region_map(
    id: &str,
    aria_label: &str,
    areas: &[Area],
    borders: &[MultiPolygon<f64>],
    label_size: f64,
) -> Option<String> {
    let rect = bounds(areas.iter().map(|a| &a.shape).chain(borders))?;
    let proj = Projection::fit(rect, MAP_WIDTH)?;
    let mut svg = String::with_capacity(64 * 1024);
    open_svg(&mut svg, id, "map", aria_label, MAP_WIDTH, proj.height);
    let mut labels = String::new();
    svg.push_str("<g class=\"areas\">");
    for area in areas {
        let shape = proj.project(&area.shape, SIMPLIFY_PX);
        let d = path_data(&shape);
        if d.is_empty() {
            continue;
        }
        let code = escape(&area.code);
        let name = escape(&area.name);
        let _ = write!(
            svg,
            "<a href=\"/regions/{code}\"><path class=\"g{}\" data-code=\"{code}\" d=\"{d}\"><title>{name}</title></path></a>",
            area.group % GROUP_CLASSES
        );
        // An interior point, unlike the centroid, stays inside crescent- or
        // C-shaped counties, so a label never names the neighbour.
        if let Some(p) = shape.interior_point() {
            let _ = write!(labels, "<text x=\"{:.1}\" y=\"{:.1}\">{name}</text>", p.x(), p.y());
        }
    }
    svg.push_str("</g>");
    // One path for all borders: its moves are relative, so they must be
    // written by one writer that knows where the previous border ended.
    let mut border = PathWriter::default();
    for b in borders {
        border.shape(&proj.project(b, BORDER_SIMPLIFY_PX));
    }
    let border_d = border.d;
    if !border_d.is_empty() {
        let _ = write!(svg, "<path class=\"borders\" d=\"{border_d}\"/>");
    }
    let _ = write!(svg, "<g class=\"labels\" font-size=\"{label_size}\">{labels}</g></svg>");
    Some(svg)
}

/// A small unlinked outline of one region, with a dot at each of `markers`
/// (lon, lat): where a consumer's produce was grown in its county, where a
/// village's devices stand.
pub fn outline(id: &str, aria_label: &str, shape: &MultiPolygon<f64>, markers: &[(f64, f64)]) -> Option<String> {
    let (mut svg, proj) = open_outline(id, aria_label, shape)?;
    for (lon, lat) in markers {
        let (x, y) = proj.point(*lon, *lat);
        let _ = write!(svg, "<circle class=\"marker\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"6\"/>");
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// [`outline`] with markers in layers, each drawn with its own class so
/// the stylesheet tells them apart (a network's sites, the villages that
/// shipped goods): (class, points as lon/lat).
pub fn outline_layers(
    id: &str,
    aria_label: &str,
    shape: &MultiPolygon<f64>,
    layers: &[(&str, &[(f64, f64)])],
) -> Option<String> {
    let (mut svg, proj) = open_outline(id, aria_label, shape)?;
    for (class, points) in layers {
        let class = escape(class);
        for (lon, lat) in *points {
            let (x, y) = proj.point(*lon, *lat);
            let _ = write!(
                svg,
                "<circle class=\"marker {class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\"/>"
            );
        }
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// An outline's opened SVG with the region's shape drawn, and the
/// projection its markers are placed with; `None` for a shape too small or
/// empty to draw.
fn open_outline(id: &str, aria_label: &str, shape: &MultiPolygon<f64>) -> Option<(String, Projection)> {
    let proj = Projection::fit(shape.bounding_rect()?, OUTLINE_WIDTH)?;
    let d = path_data(&proj.project(shape, SIMPLIFY_PX));
    if d.is_empty() {
        return None;
    }
    let mut svg = String::new();
    open_svg(&mut svg, id, "outline", aria_label, OUTLINE_WIDTH, proj.height);
    let _ = write!(svg, "<path d=\"{d}\"/>");
    Some((svg, proj))
}

fn open_svg(svg: &mut String, id: &str, class: &str, aria_label: &str, width: f64, height: f64) {
    let _ = write!(
        svg,
        "<svg id=\"{}\" class=\"{class}\" viewBox=\"0 0 {width:.0} {:.0}\" role=\"img\" aria-label=\"{}\">",
        escape(id),
        height.ceil(),
        escape(aria_label)
    );
}

/// Path data for every ring of `shape`, in relative moves of tenths of a
/// pixel. Deltas are taken between already-rounded points, so rounding
/// never accumulates along a ring.
fn path_data(shape: &MultiPolygon<f64>) -> String {
    let mut w = PathWriter::default();
    w.shape(shape);
    w.d
}

#[derive(Default)]
struct PathWriter {
    d: String,
    /// The start of the last subpath, where `z` leaves the pen, in tenths.
    pen: (i64, i64),
    /// Whether the last number written holds a decimal point (then a number
    /// starting with `.` needs no separator: `1.5.3` reads as 1.5 and .3).
    last_had_dot: bool,
    /// Whether the last thing written was a command letter.
    after_command: bool,
}

impl PathWriter {
    fn shape(&mut self, shape: &MultiPolygon<f64>) {
        for poly in shape {
            self.ring(poly.exterior());
            for hole in poly.interiors() {
                self.ring(hole);
            }
        }
    }

    fn ring(&mut self, ring: &LineString<f64>) {
        let mut pts: Vec<(i64, i64)> = Vec::with_capacity(ring.0.len());
        for c in ring.coords() {
            let p = ((c.x * 10.0).round() as i64, (c.y * 10.0).round() as i64);
            if pts.last() != Some(&p) {
                pts.push(p);
            }
        }
        if pts.len() > 1 && pts.first() == pts.last() {
            pts.pop();
        }
        if pts.len() < 3 {
            return;
        }
        // A leading `m` is absolute; later ones are relative to the pen.
        // Pairs after an `m` are relative line-tos, so no `l` is needed.
        self.command('m');
        let mut prev = self.pen;
        for &p in &pts {
            self.number(p.0 - prev.0);
            self.number(p.1 - prev.1);
            prev = p;
        }
        self.command('z');
        self.pen = pts[0];
    }

    fn command(&mut self, c: char) {
        self.d.push(c);
        self.after_command = true;
        self.last_had_dot = false;
    }

    fn number(&mut self, tenths: i64) {
        let (whole, frac) = (tenths.abs() / 10, tenths.abs() % 10);
        let mut s = String::with_capacity(8);
        if tenths < 0 {
            s.push('-');
        }
        match (whole, frac) {
            (w, 0) => {
                let _ = write!(s, "{w}");
            }
            (0, f) => {
                let _ = write!(s, ".{f}");
            }
            (w, f) => {
                let _ = write!(s, "{w}.{f}");
            }
        }
        let self_delimiting = s.starts_with('-') || (s.starts_with('.') && self.last_had_dot);
        if !self.after_command && !self_delimiting {
            self.d.push(' ');
        }
        self.last_had_dot = s.contains('.');
        self.after_command = false;
        self.d.push_str(&s);
    }
}

/// One vehicle's run on a [`route_map`]: its stops (lon, lat) in order.
pub struct MapRoute {
    pub name: String,
    pub stops: Vec<(f64, f64)>,
}

/// Route colours, cycled: the Okabe–Ito palette, told apart by people with
/// the common colour-vision deficiencies and on a grey print.
pub const ROUTE_COLOURS: [&str; 7] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000",
];

/// Smallest span of a route map in degrees, so a depot alone or stops in
/// one village still get a readable map.
const MIN_ROUTE_SPAN_DEG: f64 = 0.02;

/// A dispatch plan on a map: the county's outline behind (when stored),
/// the depot as a square, each route as a coloured line from the depot
/// through its stops and back with numbered stops, and `unassigned`
/// pickups as hollow red rings. Colours are attributes, not classes, so the
/// map keeps them wherever it is shown. `None` only if a coordinate is not
/// finite.
pub fn route_map(
    id: &str,
    aria_label: &str,
    background: Option<&MultiPolygon<f64>>,
    depot: (f64, f64),
    routes: &[MapRoute],
    unassigned: &[(f64, f64)],
) -> Option<String> {
    let points: Vec<(f64, f64)> = std::iter::once(depot)
        .chain(routes.iter().flat_map(|r| r.stops.iter().copied()))
        .chain(unassigned.iter().copied())
        .collect();
    if points.iter().any(|p| !p.0.is_finite() || !p.1.is_finite()) {
        return None;
    }
    let fold =
        |f: fn(f64, f64) -> f64, pick: fn(&(f64, f64)) -> f64, start: f64| points.iter().map(pick).fold(start, f);
    let (mut min_x, mut max_x) = (fold(f64::min, |p| p.0, f64::MAX), fold(f64::max, |p| p.0, f64::MIN));
    let (mut min_y, mut max_y) = (fold(f64::min, |p| p.1, f64::MAX), fold(f64::max, |p| p.1, f64::MIN));
    // The routes decide the frame; a margin keeps markers inside it.
    let margin = f64::max(max_x - min_x, max_y - min_y).max(MIN_ROUTE_SPAN_DEG) * 0.08;
    let grow = |lo: &mut f64, hi: &mut f64| {
        let short = (MIN_ROUTE_SPAN_DEG - (*hi - *lo)).max(0.0) / 2.0;
        *lo -= short + margin;
        *hi += short + margin;
    };
    grow(&mut min_x, &mut max_x);
    grow(&mut min_y, &mut max_y);
    let rect = Rect::new(Coord { x: min_x, y: min_y }, Coord { x: max_x, y: max_y });
    let proj = Projection::fit(rect, MAP_WIDTH)?;
    let mut svg = String::with_capacity(8 * 1024);
    open_svg(&mut svg, id, "routemap", aria_label, MAP_WIDTH, proj.height);
    if let Some(shape) = background {
        let d = path_data(&proj.project(shape, SIMPLIFY_PX));
        if !d.is_empty() {
            let _ = write!(
                svg,
                "<path class=\"area\" d=\"{d}\" fill=\"#dcebdf\" stroke=\"#7f9f89\" fill-rule=\"evenodd\"/>"
            );
        }
    }
    let (dx, dy) = proj.point(depot.0, depot.1);
    for (i, route) in routes.iter().enumerate() {
        let colour = ROUTE_COLOURS[i % ROUTE_COLOURS.len()];
        let mut line = format!("{dx:.1},{dy:.1}");
        for (lon, lat) in &route.stops {
            let (x, y) = proj.point(*lon, *lat);
            let _ = write!(line, " {x:.1},{y:.1}");
        }
        let _ = write!(line, " {dx:.1},{dy:.1}");
        let _ = write!(
            svg,
            "<polyline class=\"route\" points=\"{line}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"3\" stroke-linejoin=\"round\"><title>{}</title></polyline>",
            escape(&route.name)
        );
    }
    for (lon, lat) in unassigned {
        let (x, y) = proj.point(*lon, *lat);
        let _ = write!(
            svg,
            "<circle class=\"unassigned\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"8\" fill=\"#fff\" stroke=\"#c92a2a\" stroke-width=\"2.5\"/>"
        );
    }
    // Stops after all lines, so no line crosses a number.
    for (i, route) in routes.iter().enumerate() {
        let colour = ROUTE_COLOURS[i % ROUTE_COLOURS.len()];
        for (n, (lon, lat)) in route.stops.iter().enumerate() {
            let (x, y) = proj.point(*lon, *lat);
            let _ = write!(
                svg,
                "<g class=\"stop\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"10\" fill=\"{colour}\" stroke=\"#fff\" stroke-width=\"2\"/><text x=\"{x:.1}\" y=\"{y:.1}\" fill=\"#fff\" font-size=\"11\" text-anchor=\"middle\" dominant-baseline=\"central\">{}</text></g>",
                n + 1
            );
        }
    }
    let _ = write!(
        svg,
        "<rect class=\"depot\" x=\"{:.1}\" y=\"{:.1}\" width=\"16\" height=\"16\" fill=\"#1d2a22\" stroke=\"#fff\" stroke-width=\"2\"/></svg>",
        dx - 8.0,
        dy - 8.0
    );
    Some(svg)
}

/// Escapes text for SVG element content and attribute values (the charts'
/// too).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use geo::{Polygon, polygon};

    /// The number written after the first `marker` in `svg`, up to the
    /// closing quote; the chart tests read their attributes with it too.
    pub(crate) fn number_after(svg: &str, marker: &str) -> f64 {
        let (_, rest) = svg.split_once(marker).unwrap_or_else(|| panic!("no {marker} in {svg}"));
        rest.split('"').next().unwrap_or_default().parse().unwrap()
    }

    fn square(x: f64, y: f64, side: f64) -> Polygon<f64> {
        polygon![(x: x, y: y), (x: x + side, y: y), (x: x + side, y: y + side), (x: x, y: y + side), (x: x, y: y)]
    }

    /// Decodes relative path data back into absolute points per subpath.
    fn decode(d: &str) -> Vec<Vec<(f64, f64)>> {
        let mut rings = Vec::new();
        let mut pen = (0.0, 0.0);
        for sub in d.split('m').filter(|s| !s.is_empty()) {
            let body = sub.strip_suffix('z').expect("closed subpath");
            let mut nums = Vec::new();
            let mut cur = String::new();
            for ch in body.chars() {
                let starts_new = ch == '-' || ch == ' ' || (ch == '.' && cur.contains('.'));
                if starts_new && !cur.is_empty() {
                    nums.push(cur.parse::<f64>().unwrap());
                    cur.clear();
                }
                if ch != ' ' {
                    cur.push(ch);
                }
            }
            if !cur.is_empty() {
                nums.push(cur.parse::<f64>().unwrap());
            }
            let mut at = pen;
            let mut ring = Vec::new();
            for pair in nums.chunks(2) {
                at = (at.0 + pair[0], at.1 + pair[1]);
                ring.push(at);
            }
            pen = ring[0];
            rings.push(ring);
        }
        rings
    }

    #[test]
    fn relative_paths_decode_to_the_rounded_points() {
        let mut w = PathWriter::default();
        let a: LineString<f64> = vec![(10.04, 20.0), (15.55, 20.0), (15.5, 24.26), (10.0, 20.0)].into();
        let b: LineString<f64> = vec![(30.0, 5.0), (31.0, 5.0), (31.0, 6.0)].into();
        w.ring(&a);
        w.ring(&b);
        let rings = decode(&w.d);
        let round = |v: f64| (v * 10.0).round() / 10.0;
        assert_eq!(rings.len(), 2);
        let want_a = [(10.0, 20.0), (15.6, 20.0), (15.5, 24.3)];
        for (got, want) in rings[0].iter().zip(want_a) {
            assert!(
                (round(got.0) - want.0).abs() < 1e-9 && (round(got.1) - want.1).abs() < 1e-9,
                "{got:?} vs {want:?} in {}",
                w.d
            );
        }
        assert!(
            (round(rings[1][2].0) - 31.0).abs() < 1e-9 && (round(rings[1][2].1) - 6.0).abs() < 1e-9,
            "{}",
            w.d
        );
    }

    #[test]
    fn degenerate_rings_are_dropped() {
        let mut w = PathWriter::default();
        let tiny: LineString<f64> = vec![(1.0, 1.0), (1.01, 1.01), (1.0, 1.0)].into();
        w.ring(&tiny);
        assert!(w.d.is_empty());
    }

    #[test]
    fn maps_link_each_area_and_escape_names() {
        let areas = vec![
            Area {
                code: "360102".into(),
                name: "东湖区".into(),
                shape: square(115.0, 28.0, 0.1).into(),
                group: 0,
            },
            Area {
                code: "360103".into(),
                name: "<西湖&区>".into(),
                shape: square(115.1, 28.0, 0.1).into(),
                group: 1,
            },
        ];
        let svg = region_map("region-map", "地图", &areas, &[square(115.0, 28.0, 0.2).into()], 9.0).unwrap();
        assert!(
            svg.starts_with("<svg id=\"region-map\" class=\"map\" viewBox=\"0 0 800 "),
            "{svg}"
        );
        assert!(svg.contains("<a href=\"/regions/360102\"><path class=\"g0\" data-code=\"360102\" d=\"m"));
        assert!(svg.contains("<title>&lt;西湖&amp;区&gt;</title>"));
        assert!(svg.contains(">东湖区</text>"));
        assert!(svg.contains("<path class=\"borders\""));
        assert!(!svg.contains("<西湖"));
    }

    #[test]
    fn several_borders_in_one_path_stay_in_place() {
        let a = Area {
            code: "1".into(),
            name: "a".into(),
            shape: square(0.0, 0.0, 3.0).into(),
            group: 0,
        };
        let svg = region_map(
            "m",
            "m",
            &[a],
            &[square(0.0, 0.0, 1.0).into(), square(2.0, 2.0, 1.0).into()],
            9.0,
        )
        .unwrap();
        let d = svg
            .split("<path class=\"borders\" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let rings = decode(d);
        assert_eq!(rings.len(), 2, "{d}");
        let xs = |r: &Vec<(f64, f64)>| {
            r.iter()
                .map(|p| p.0)
                .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)))
        };
        // The second square starts two thirds of the way across the map.
        let (lo0, hi0) = xs(&rings[0]);
        let (lo1, hi1) = xs(&rings[1]);
        assert!(lo0 < 10.0 && hi0 < 300.0, "{lo0}..{hi0}");
        assert!(lo1 > 500.0 && hi1 <= MAP_WIDTH, "{lo1}..{hi1}");
    }

    #[test]
    fn the_marker_lands_where_its_coordinates_are() {
        // The square spans lon 10–11, lat 59.5–60.5; its centre is the middle.
        let svg = outline("o", "x", &square(10.0, 59.5, 1.0).into(), &[(10.5, 60.0)]).unwrap();
        let attr = |name: &str| number_after(&svg, &format!("{name}=\""));
        assert!((attr("cx") - OUTLINE_WIDTH / 2.0).abs() < 0.2, "{svg}");
        let height = number_after(&svg, "viewBox=\"0 0 240 ");
        assert!((attr("cy") - height / 2.0).abs() < 1.0, "{svg}");
    }

    #[test]
    fn projection_keeps_the_aspect_of_the_region() {
        // A square in degrees at 60°N is half as wide as tall on the ground.
        let svg = outline("o", "x", &square(10.0, 59.5, 1.0).into(), &[]).unwrap();
        let height = number_after(&svg, "viewBox=\"0 0 240 ");
        let expected = (OUTLINE_WIDTH - 2.0 * PAD) / 60f64.to_radians().cos() + 2.0 * PAD;
        assert!((height - expected.ceil()).abs() <= 1.0, "{height} vs {expected}");
    }

    #[test]
    fn route_maps_draw_one_line_per_route_through_numbered_stops() {
        let routes = [
            MapRoute {
                name: "赣A1<".into(),
                stops: vec![(115.9, 28.7), (115.95, 28.72)],
            },
            MapRoute {
                name: "赣A2".into(),
                stops: vec![(115.8, 28.6)],
            },
        ];
        let svg = route_map("plan", "路线", None, (115.89, 28.68), &routes, &[(116.0, 28.8)]).unwrap();
        assert_eq!(svg.matches("<polyline class=\"route\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("<g class=\"stop\">").count(), 3);
        assert_eq!(svg.matches("class=\"unassigned\"").count(), 1);
        assert!(svg.contains("<title>赣A1&lt;</title>") && svg.contains(">2</text>"));
        assert!(svg.contains(ROUTE_COLOURS[0]) && svg.contains(ROUTE_COLOURS[1]));
        // A route starts and ends at the depot's square (centre = x + 8).
        let first = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        let pts: Vec<&str> = first.split(' ').collect();
        assert_eq!(pts.len(), 4);
        assert_eq!(pts[0], pts[3]);
        let depot_x = number_after(&svg, "class=\"depot\" x=\"");
        let start_x: f64 = pts[0].split(',').next().unwrap().parse().unwrap();
        assert!((depot_x + 8.0 - start_x).abs() < 0.11, "{depot_x} {start_x}");
        // Every point lies inside the view box.
        for p in pts {
            let x: f64 = p.split(',').next().unwrap().parse().unwrap();
            assert!(x > 0.0 && x < MAP_WIDTH, "{x}");
        }
        // A depot alone still makes a map; a non-finite point does not.
        assert!(route_map("p", "p", None, (115.0, 28.0), &[], &[]).is_some());
        assert!(route_map("p", "p", None, (f64::NAN, 28.0), &[], &[]).is_none());
    }

    #[test]
    fn stored_geojson_is_read() {
        let poly = parse_boundary(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#).unwrap();
        assert_eq!(poly.0.len(), 1);
        assert!(parse_boundary(r#"{"type":"Point","coordinates":[0,0]}"#).is_none());
        assert!(parse_boundary("not json").is_none());
    }
}
