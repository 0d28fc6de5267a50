//! The region tree: shipped Jiangxi data, lookups, search, village types, import.

use std::io::Write;

use shuxiang_core::auth::Actor;
use shuxiang_core::import::{self, ImportError};
use shuxiang_core::region::{RegionCode, VillageType};
use shuxiang_core::regions;
use shuxiang_core::{Db, audit};

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

shuxiang_core::db_test!(async fn jiangxi_counts_match_the_statistics(db) {
    let jx = regions::get(&db, &rc("36")).await.unwrap().unwrap();
    assert_eq!(jx.name, "江西省");
    assert_eq!(jx.level, "province");
    assert_eq!(jx.parent, None);
    let c = jx.counts();
    assert_eq!((c.city, c.county, c.township, c.village), (11, 100, 1767, 22080));
    let nc = regions::get(&db, &rc("3601")).await.unwrap().unwrap();
    assert_eq!(nc.name, "南昌市");
    assert_eq!(nc.counts().city, 0);
    assert!(nc.counts().county > 0 && nc.counts().village > nc.counts().township);
    let total = regions::count(&db).await.unwrap();
    assert_eq!(total, 1 + 11 + 100 + 1767 + 22080);
});

shuxiang_core::db_test!(async fn padded_codes_resolve_to_the_region(db) {
    assert_eq!(regions::resolve(&db, &rc("360000")).await.unwrap().unwrap().code, "36");
    assert_eq!(regions::resolve(&db, &rc("360100")).await.unwrap().unwrap().code, "3601");
    assert_eq!(regions::resolve(&db, &rc("360102000000")).await.unwrap().unwrap().code, "360102");
    assert!(regions::resolve(&db, &rc("369999")).await.unwrap().is_none());
    assert_eq!(regions::require(&db, &rc("11")).await.unwrap_err().code(), "not_found");
});

shuxiang_core::db_test!(async fn children_are_the_next_level_in_code_order(db) {
    let kids = regions::children(&db, &rc("36")).await.unwrap();
    assert_eq!(kids.len(), 11);
    assert!(kids.windows(2).all(|w| w[0].code < w[1].code));
    assert!(kids.iter().all(|k| k.level == "city" && k.parent.as_deref() == Some("36")));
    let towns = regions::children(&db, &rc("360102")).await.unwrap();
    assert!(towns.iter().any(|t| t.name == "滕王阁街道"));
    assert_eq!(regions::roots(&db).await.unwrap().len(), 1);
});

shuxiang_core::db_test!(async fn search_finds_names_within_scope(db) {
    let hits = regions::search(&db, "滕王阁", None, 20).await.unwrap();
    assert!(hits.iter().any(|r| r.code == "360102002"), "{hits:?}");
    let scoped = regions::search(&db, "街道", Some(&[rc("360102")]), 500).await.unwrap();
    assert!(!scoped.is_empty());
    assert!(scoped.iter().all(|r| r.code.starts_with("360102")));
    assert!(regions::search(&db, "滕王阁", Some(&[rc("360103")]), 20).await.unwrap().is_empty());
    // LIKE metacharacters are matched literally.
    assert!(regions::search(&db, "%", None, 5).await.unwrap().is_empty());
    // Prefix matches rank first.
    let nc = regions::search(&db, "南昌", None, 5).await.unwrap();
    assert!(nc[0].name.starts_with("南昌"), "{nc:?}");
});

shuxiang_core::db_test!(async fn village_type_is_written_with_its_audit_entry(db) {
    let v = rc("360102002001");
    let mut tx = db.begin().await.unwrap();
    regions::set_village_type(&mut tx, &v, Some(VillageType::Suburban)).await.unwrap();
    audit::record(&mut tx, &Actor::system("test"), audit::AuditEvent {
        action: "region.update", target: format!("region:{v}"), region: Some(v.to_string()), detail: serde_json::json!({}),
    }).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(regions::get(&db, &v).await.unwrap().unwrap().village_type(), Some(VillageType::Suburban));

    // A rolled-back change leaves neither the value nor the log entry.
    let mut tx = db.begin().await.unwrap();
    regions::set_village_type(&mut tx, &v, Some(VillageType::Relocation)).await.unwrap();
    drop(tx);
    assert_eq!(regions::get(&db, &v).await.unwrap().unwrap().village_type(), Some(VillageType::Suburban));
    let log = audit::list(&db, None, &audit::AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "region.update").count(), 1);

    let mut tx = db.begin().await.unwrap();
    assert_eq!(regions::set_village_type(&mut tx, &rc("360102002999"), None).await.unwrap_err().code(), "not_found");
});

shuxiang_core::db_test!(async fn shipped_boundaries_are_stored_per_region(db) {
    let county = regions::boundary(&db, &rc("360102")).await.unwrap().unwrap();
    assert!(county.geometry.contains("MultiPolygon"));
    assert!(county.simplified.len() < county.geometry.len());
    assert!(county.min_lon > 115.0 && county.max_lon < 116.5 && county.min_lat > 28.0 && county.max_lat < 29.0);
    // 360000.geojson and 360100.geojson resolve to the province and the city.
    assert!(regions::boundary(&db, &rc("36")).await.unwrap().is_some());
    assert!(regions::boundary(&db, &rc("3601")).await.unwrap().is_some());
    let counties = regions::child_boundaries(&db, &rc("3601")).await.unwrap();
    assert_eq!(counties.len(), regions::children(&db, &rc("3601")).await.unwrap().len());
    assert!(regions::boundary(&db, &rc("360102002")).await.unwrap().is_none());
});

fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        if let Some(stem) = name.strip_suffix(".gz") {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            gz.write_all(body.as_bytes()).unwrap();
            gz.finish().unwrap();
            let _ = stem;
        } else {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
    }
    dir
}

async fn import_dir(db: &Db, dir: &std::path::Path) -> Result<import::ImportSummary, ImportError> {
    let files = import::region_files_in(dir).map_err(ImportError::Core)?;
    import::import_regions(db, &files, &|_| {}).await
}

shuxiang_core::db_test!(async fn another_province_imports_from_gzip_idempotently(db) {
    let dir = write_dir(&[
        ("provinces.csv.gz", "code,name\n11,\"北京市\"\n"),
        ("cities.csv.gz", "code,name,provinceCode\n1101,\"市辖区\",11\n"),
        ("counties.csv.gz", "code,name,cityCode,provinceCode\n110101,\"东城区\",1101,11\n"),
        ("townships.csv.gz", "code,name,areaCode,provinceCode,cityCode\n110101001,\"东华门街道\",110101,11,1101\n"),
        ("villages.csv.gz", "code,name,streetCode,provinceCode,cityCode,areaCode\n110101001001,\"多福巷社区居委会\",110101001,11,1101,110101\n110101001002,\"银闸社区居委会\",110101001,11,1101,110101\n"),
    ]);
    let first = import_dir(&db, dir.path()).await.unwrap();
    assert_eq!((first.read, first.written), (6, 6));
    let again = import_dir(&db, dir.path()).await.unwrap();
    assert_eq!((again.read, again.written), (6, 0), "a second run must change nothing");
    let bj = regions::get(&db, &rc("11")).await.unwrap().unwrap();
    assert_eq!((bj.counts().county, bj.counts().village), (1, 2));
    // Jiangxi is untouched.
    assert_eq!(regions::get(&db, &rc("36")).await.unwrap().unwrap().counts().village, 22080);

    // A renamed village is an update, and only that row is written.
    let renamed = write_dir(&[("villages.csv", "code,name,streetCode,provinceCode,cityCode,areaCode\n110101001002,银闸社区,110101001,11,1101,110101\n")]);
    assert_eq!(import_dir(&db, renamed.path()).await.unwrap().written, 1);
    assert_eq!(regions::get(&db, &rc("110101001002")).await.unwrap().unwrap().name, "银闸社区");
});

shuxiang_core::db_test!(async fn bad_files_name_the_line_and_field_and_write_nothing(db) {
    let dir = write_dir(&[
        ("provinces.csv", "code,name\n11,北京市\n"),
        ("cities.csv", "code,name,provinceCode\n1101,市辖区,11\n1102,,11\n110,短码,11\n1201,天津,11\n"),
    ]);
    let Err(ImportError::Lines(errors)) = import_dir(&db, dir.path()).await else { panic!("expected line errors") };
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown, [
        "cities.csv line 3 field name: the name is empty",
        "cities.csv line 4 field code: \"110\" is not a 4-digit city code",
        "cities.csv line 5 field provinceCode: parent \"11\" does not match code 1201 (expected 12)",
    ]);
    assert!(regions::get(&db, &rc("11")).await.unwrap().is_none(), "nothing may be written");

    let orphan = write_dir(&[("counties.csv", "code,name,cityCode,provinceCode\n130101,某区,1301,13\n")]);
    assert!(matches!(import_dir(&db, orphan.path()).await, Err(ImportError::Tree(_))));
    assert!(regions::get(&db, &rc("130101")).await.unwrap().is_none());
});

shuxiang_core::db_test!(async fn resolve_with_ancestors_reads_the_chain(db) {
    let (v, chain) = regions::resolve_with_ancestors(&db, &rc("360102002001")).await.unwrap().unwrap();
    assert_eq!(v.name, "民巷社区居委会");
    let names: Vec<&str> = chain.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["江西省", "南昌市", "东湖区", "滕王阁街道"]);
    let (city, chain) = regions::resolve_with_ancestors(&db, &rc("360100")).await.unwrap().unwrap();
    assert_eq!((city.code.as_str(), chain.len()), ("3601", 1));
    assert!(regions::resolve_with_ancestors(&db, &rc("369999")).await.unwrap().is_none());
});
