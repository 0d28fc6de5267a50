//! Reading region and boundary files: the national statistical code files
//! (`provinces|cities|counties|townships|villages.csv`, optionally `.gz`) and
//! one GeoJSON geometry per region. Every problem is reported with the file,
//! line and field, and nothing is written unless the whole set is valid.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use geo::{BoundingRect, Simplify};

use crate::db::Db;
use crate::error::{CoreError, Result};
use crate::region::{RegionCode, RegionLevel};
use crate::regions::{self, Boundary, RegionRecord};

/// File stem per level, as in the national files.
const FILES: [(RegionLevel, &str); 5] = [
    (RegionLevel::Province, "provinces"),
    (RegionLevel::City, "cities"),
    (RegionLevel::County, "counties"),
    (RegionLevel::Township, "townships"),
    (RegionLevel::Village, "villages"),
];

/// Column naming the parent's code, per level.
fn parent_column(level: RegionLevel) -> Option<&'static str> {
    match level {
        RegionLevel::Province => None,
        RegionLevel::City => Some("provinceCode"),
        RegionLevel::County => Some("cityCode"),
        RegionLevel::Township => Some("areaCode"),
        RegionLevel::Village => Some("streetCode"),
    }
}

/// One problem in an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub file: String,
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {} field {}: {}",
            self.file, self.line, self.field, self.message
        )
    }
}

/// The records of one level's file, read from disk or from the binary.
pub struct RegionFile {
    pub name: String,
    pub level: RegionLevel,
    pub bytes: Vec<u8>,
}

/// Finds the five level files in `dir`, plain or gzip; absent levels are skipped
/// so a directory may hold, say, only villages of one county.
pub fn region_files_in(dir: &Path) -> Result<Vec<RegionFile>> {
    let mut out = Vec::new();
    for (level, stem) in FILES {
        let plain = dir.join(format!("{stem}.csv"));
        let gz = dir.join(format!("{stem}.csv.gz"));
        let (path, gzip): (PathBuf, bool) = if plain.exists() {
            (plain, false)
        } else if gz.exists() {
            (gz, true)
        } else {
            continue;
        };
        let raw = std::fs::read(&path)?;
        let bytes = if gzip {
            let mut out = Vec::with_capacity(raw.len() * 5);
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|e| {
                    CoreError::malformed(
                        "invalid_gzip",
                        format!("{}: not a valid gzip file: {e}", path.display()),
                    )
                })?;
            out
        } else {
            raw
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(RegionFile { name, level, bytes });
    }
    if out.is_empty() {
        return Err(CoreError::malformed(
            "no_region_files",
            format!(
                "{} holds none of provinces.csv, cities.csv, counties.csv, townships.csv, villages.csv (.gz accepted)",
                dir.display()
            ),
        ));
    }
    Ok(out)
}

/// Jiangxi's five levels as shipped inside the binary (data/regions/jiangxi).
pub fn jiangxi_files() -> Vec<RegionFile> {
    macro_rules! shipped {
        ($level:expr, $stem:literal) => {
            RegionFile {
                name: concat!($stem, ".csv").to_string(),
                level: $level,
                bytes: include_bytes!(concat!("../../../data/regions/jiangxi/", $stem, ".csv")).to_vec(),
            }
        };
    }
    vec![
        shipped!(RegionLevel::Province, "provinces"),
        shipped!(RegionLevel::City, "cities"),
        shipped!(RegionLevel::County, "counties"),
        shipped!(RegionLevel::Township, "townships"),
        shipped!(RegionLevel::Village, "villages"),
    ]
}

/// Parses and validates the files; returns the records, higher levels first,
/// or every line error found (up to 100).
pub fn parse_region_files(files: &[RegionFile]) -> std::result::Result<Vec<RegionRecord>, Vec<LineError>> {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        parse_one(file, &mut records, &mut errors);
        if errors.len() >= 100 {
            break;
        }
    }
    if errors.is_empty() { Ok(records) } else { Err(errors) }
}

fn parse_one(file: &RegionFile, records: &mut Vec<RegionRecord>, errors: &mut Vec<LineError>) {
    let err = |line: u64, field: &str, message: String| LineError {
        file: file.name.clone(),
        line,
        field: field.to_string(),
        message,
    };
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(&file.bytes[..]);
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(err(1, "header", e.to_string()));
            return;
        }
    };
    let col = |name: &str| headers.iter().position(|h| h.trim_start_matches('\u{feff}') == name);
    let (Some(code_i), Some(name_i)) = (col("code"), col("name")) else {
        errors.push(err(
            1,
            "header",
            "the header must name the columns code and name".into(),
        ));
        return;
    };
    let parent = parent_column(file.level).map(|c| (c, col(c)));
    let want_len = file.level.code_len();
    for row in rdr.records() {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(err(line, "row", e.to_string()));
                continue;
            }
        };
        let line = row.position().map(|p| p.line()).unwrap_or(0);
        let raw_code = row.get(code_i).unwrap_or("").trim();
        let code = match RegionCode::parse(raw_code) {
            Ok(c) if raw_code.len() == want_len => c,
            _ => {
                errors.push(err(
                    line,
                    "code",
                    format!("{raw_code:?} is not a {}-digit {} code", want_len, file.level.as_str()),
                ));
                continue;
            }
        };
        let name = row.get(name_i).unwrap_or("").trim();
        if name.is_empty() {
            errors.push(err(line, "name", "the name is empty".into()));
            continue;
        }
        if let Some((pcol, Some(i))) = parent {
            let given = row.get(i).unwrap_or("").trim();
            let derived = code.parent().map(|p| p.to_string()).unwrap_or_default();
            if given != derived {
                errors.push(err(
                    line,
                    pcol,
                    format!("parent {given:?} does not match code {code} (expected {derived})"),
                ));
                continue;
            }
        }
        records.push(RegionRecord {
            code,
            name: name.to_string(),
        });
    }
}

/// Checks that every record's parent is in the set or already stored.
pub async fn check_parents(db: &Db, records: &[RegionRecord]) -> Result<Vec<String>> {
    let present: HashSet<&str> = records.iter().map(|r| r.code.as_str()).collect();
    let mut missing: Vec<RegionCode> = records
        .iter()
        .filter_map(|r| r.code.parent())
        .filter(|p| !present.contains(p.as_str()))
        .collect();
    missing.sort();
    missing.dedup();
    let mut problems = Vec::new();
    for p in missing {
        if regions::get(db, &p).await?.is_none() {
            problems.push(format!("parent region {p} is neither in the files nor stored"));
        }
    }
    Ok(problems)
}

/// Tolerance in degrees for the map copy of a boundary (about 200 m): finer
/// than a pixel on a province map, and it keeps the province page small.
const SIMPLIFY_EPSILON_DEG: f64 = 0.002;

/// Parses one GeoJSON geometry (or a Feature holding one) and prepares it for
/// storage under `code`.
pub fn boundary_from_geojson(code: &RegionCode, text: &str) -> Result<Boundary> {
    let gj: geojson::GeoJson = text
        .parse()
        .map_err(|e| CoreError::malformed("invalid_geojson", format!("boundary of {code}: {e}")))?;
    let geometry = match gj {
        geojson::GeoJson::Geometry(g) => g,
        geojson::GeoJson::Feature(f) => f.geometry.ok_or_else(|| {
            CoreError::malformed(
                "invalid_geojson",
                format!("boundary of {code}: feature has no geometry"),
            )
        })?,
        geojson::GeoJson::FeatureCollection(_) => {
            return Err(CoreError::malformed(
                "invalid_geojson",
                format!("boundary of {code}: expected one geometry, found a FeatureCollection"),
            ));
        }
    };
    let shape: geo::Geometry<f64> = geometry
        .try_into()
        .map_err(|e| CoreError::malformed("invalid_geojson", format!("boundary of {code}: {e}")))?;
    let multi: geo::MultiPolygon<f64> = match shape {
        geo::Geometry::Polygon(p) => p.into(),
        geo::Geometry::MultiPolygon(m) => m,
        _ => {
            return Err(CoreError::malformed(
                "invalid_geojson",
                format!("boundary of {code}: expected a Polygon or MultiPolygon"),
            ));
        }
    };
    let rect = multi
        .bounding_rect()
        .ok_or_else(|| CoreError::malformed("invalid_geojson", format!("boundary of {code}: empty geometry")))?;
    let simplified = multi.simplify(SIMPLIFY_EPSILON_DEG);
    let full = geojson::Geometry::from(&multi).to_string();
    let simple = geojson::Geometry::from(&simplified).to_string();
    Ok(Boundary {
        code: code.to_string(),
        geometry: full,
        simplified: simple,
        min_lon: rect.min().x,
        min_lat: rect.min().y,
        max_lon: rect.max().x,
        max_lat: rect.max().y,
    })
}

/// A boundary file: its adcode (file stem) and its text.
pub struct BoundaryFile {
    pub adcode: String,
    pub text: String,
}

pub fn boundary_files_in(dir: &Path) -> Result<Vec<BoundaryFile>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("geojson") {
            continue;
        }
        let adcode = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(BoundaryFile {
            adcode,
            text: std::fs::read_to_string(&path)?,
        });
    }
    Ok(out)
}

/// Jiangxi's province, city and county boundaries shipped in the binary.
pub fn jiangxi_boundary_files() -> Vec<BoundaryFile> {
    include!(concat!(env!("OUT_DIR"), "/jiangxi_boundaries.rs"))
}

/// Resolves each file's adcode against the stored tree (the files use 6-digit
/// adcodes: 360000 is the province, 360100 the city) and stores them.
pub async fn import_boundaries(db: &Db, files: &[BoundaryFile]) -> Result<(u64, Vec<String>)> {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for f in files {
        let code = RegionCode::parse(&f.adcode).map_err(|_| {
            CoreError::malformed(
                "invalid_region_code",
                format!("{}.geojson: file name is not a region code", f.adcode),
            )
        })?;
        match regions::resolve(db, &code).await? {
            Some(region) => rows.push(boundary_from_geojson(&region.code(), &f.text)?),
            None => skipped.push(f.adcode.clone()),
        }
    }
    Ok((regions::upsert_boundaries(db, &rows).await?, skipped))
}

/// Summary of a region import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub read: u64,
    pub written: u64,
}

/// Validates `files` completely, then writes them in one transaction.
pub async fn import_regions(
    db: &Db,
    files: &[RegionFile],
    progress: &(dyn Fn(u64) + Sync),
) -> std::result::Result<ImportSummary, ImportError> {
    let records = parse_region_files(files).map_err(ImportError::Lines)?;
    let problems = check_parents(db, &records).await?;
    if !problems.is_empty() {
        return Err(ImportError::Tree(problems));
    }
    let written = regions::upsert(db, &records, progress).await?;
    Ok(ImportSummary {
        read: records.len() as u64,
        written,
    })
}

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} problem(s) in the files; first: {}", .0.len(), .0[0])]
    Lines(Vec<LineError>),
    #[error("{} region(s) without a parent; first: {}", .0.len(), .0[0])]
    Tree(Vec<String>),
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Loads the shipped Jiangxi regions and boundaries into an empty database;
/// returns false (and writes nothing) when regions are already present.
pub async fn load_shipped_jiangxi(db: &Db) -> Result<bool> {
    if regions::count(db).await? > 0 {
        return Ok(false);
    }
    import_regions(db, &jiangxi_files(), &|_| {})
        .await
        .map_err(|e| match e {
            ImportError::Core(c) => c,
            other => CoreError::Internal(format!("shipped Jiangxi data is invalid: {other}")),
        })?;
    import_boundaries(db, &jiangxi_boundary_files()).await?;
    Ok(true)
}
