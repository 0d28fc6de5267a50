//! The ledger's SQL on SQLite and PostgreSQL: dealers, append-only ledger
//! entries, the index of label codes currently sold, and anomalies. Rules
//! and permissions live in `service`; this module only reads and writes.

use sea_query::{Condition, Expr, ExprTrait, Iden, LockType, Order, Query, SelectStatement};
use serde::Serialize;
use shuxiang_core::auth::mask_phone;
use shuxiang_core::db::{Db, Tx};
use shuxiang_core::time::{Timestamp, now};
use shuxiang_core::{CoreError, RegionCode};

use super::model::{Dimension, Draft, EntryType, mask_id_number};
use crate::products::{Product, ProductKind};

#[derive(Iden)]
pub(crate) enum Dealers {
    Table,
    Id,
    Name,
    LicenceNumber,
    Region,
    Address,
    OwnerUserId,
    CreatedAt,
}

#[derive(Iden)]
pub(crate) enum DealerLedger {
    Table,
    Id,
    DealerId,
    DealerRegion,
    EntryType,
    ReversesId,
    Reason,
    EntryDate,
    ProductId,
    ProductKind,
    Quantity,
    Unit,
    Dimension,
    BaseAmount,
    LabelCodes,
    Batch,
    Supplier,
    BuyerName,
    BuyerIdNumber,
    BuyerPhone,
    BuyerVillage,
    Crop,
    CreatedAt,
    CreatedBy,
}

#[derive(Iden)]
enum SoldLabelCodes {
    Table,
    Code,
    EntryId,
}

#[derive(Iden)]
enum InputAnomalies {
    Table,
    Id,
    Kind,
    DealerId,
    DealerRegion,
    ProductId,
    EntryId,
    LabelCode,
    Detail,
    ActorId,
    At,
}

/// 农资经营店 a licensed farm-input shop.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Dealer {
    pub id: i64,
    pub name: String,
    /// 农药经营许可证 number.
    pub licence_number: String,
    /// County or township code of the shop.
    pub region: String,
    pub address: String,
    /// The user (role `dealer`) who keeps this shop's ledger.
    pub owner_user_id: i64,
    pub created_at: Timestamp,
}

impl Dealer {
    pub fn region_code(&self) -> Result<RegionCode, CoreError> {
        RegionCode::parse(&self.region).map_err(|_| CoreError::Internal(format!("dealer {} region", self.id)))
    }
}

fn dealer_columns() -> [Dealers; 7] {
    [
        Dealers::Id,
        Dealers::Name,
        Dealers::LicenceNumber,
        Dealers::Region,
        Dealers::Address,
        Dealers::OwnerUserId,
        Dealers::CreatedAt,
    ]
}

pub(crate) struct NewDealerRow<'a> {
    pub name: &'a str,
    pub licence_number: &'a str,
    pub region: &'a str,
    pub address: &'a str,
    pub owner_user_id: i64,
}

pub(crate) async fn insert_dealer(tx: &mut Tx, d: &NewDealerRow<'_>) -> Result<Dealer, CoreError> {
    let at = now();
    let q = Query::insert()
        .into_table(Dealers::Table)
        .columns(dealer_columns().into_iter().skip(1))
        .values_panic([
            d.name.into(),
            d.licence_number.into(),
            d.region.into(),
            d.address.into(),
            d.owner_user_id.into(),
            at.into(),
        ])
        .returning_col(Dealers::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&q).await?;
    Ok(Dealer {
        id,
        name: d.name.into(),
        licence_number: d.licence_number.into(),
        region: d.region.into(),
        address: d.address.into(),
        owner_user_id: d.owner_user_id,
        created_at: at,
    })
}

pub(crate) async fn get_dealer(db: &Db, id: i64) -> Result<Dealer, CoreError> {
    let q = Query::select()
        .columns(dealer_columns())
        .from(Dealers::Table)
        .and_where(Expr::col(Dealers::Id).eq(id))
        .to_owned();
    db.fetch_optional(&q)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no dealer {id}")))
}

/// Rows whose region column (`col`) lies under one of `scopes` (`None`: no limit).
pub(crate) fn in_scopes(q: &mut SelectStatement, col: impl Fn() -> Expr, scopes: Option<&[RegionCode]>) {
    let Some(scopes) = scopes else { return };
    let mut any = Condition::any();
    for code in scopes {
        let (lo, hi) = code.subtree_range();
        any = any.add(col().gte(lo).and(col().lt(hi)));
    }
    if scopes.is_empty() {
        any = any.add(Expr::val(1).eq(0));
    }
    q.cond_where(any);
}

/// Dealers under `scopes`, or owned by `owner`, whichever is given.
pub(crate) async fn list_dealers(
    db: &Db,
    scopes: Option<&[RegionCode]>,
    owner: Option<i64>,
) -> Result<Vec<Dealer>, CoreError> {
    let mut q = Query::select();
    q.columns(dealer_columns())
        .from(Dealers::Table)
        .order_by(Dealers::Id, Order::Asc);
    in_scopes(&mut q, || Expr::col(Dealers::Region), scopes);
    if let Some(owner) = owner {
        q.and_where(Expr::col(Dealers::OwnerUserId).eq(owner));
    }
    db.fetch_all(&q).await
}

/// One ledger entry as stored, the buyer's ID number and phone in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub dealer_id: i64,
    pub entry_type: EntryType,
    /// The entry this one reverses (its amount is the reversed one negated).
    pub reverses_id: Option<i64>,
    pub reason: Option<String>,
    /// Business date (YYYY-MM-DD).
    pub date: String,
    pub product_id: i64,
    pub product_kind: ProductKind,
    /// As written, in `unit`; negative on a reversal.
    pub quantity: String,
    pub unit: String,
    pub dimension: Dimension,
    /// In g, mL or pieces; negative on a reversal.
    pub base_amount: i64,
    pub label_codes: Vec<String>,
    /// 生产批号 production batch.
    pub batch: Option<String>,
    pub supplier: Option<String>,
    pub buyer_name: Option<String>,
    pub buyer_id_number: Option<String>,
    pub buyer_phone: Option<String>,
    pub buyer_village: Option<String>,
    pub crop: Option<String>,
    pub created_at: Timestamp,
    pub created_by: i64,
}

impl LedgerEntry {
    /// The entry as ledgers list it: ID number and phone masked.
    pub fn masked(mut self) -> Self {
        self.buyer_id_number = self.buyer_id_number.as_deref().map(mask_id_number);
        self.buyer_phone = self.buyer_phone.as_deref().map(mask_phone);
        self
    }
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    dealer_id: i64,
    entry_type: String,
    reverses_id: Option<i64>,
    reason: Option<String>,
    entry_date: String,
    product_id: i64,
    product_kind: String,
    quantity: String,
    unit: String,
    dimension: String,
    base_amount: i64,
    label_codes: String,
    batch: Option<String>,
    supplier: Option<String>,
    buyer_name: Option<String>,
    buyer_id_number: Option<String>,
    buyer_phone: Option<String>,
    buyer_village: Option<String>,
    crop: Option<String>,
    created_at: Timestamp,
    created_by: i64,
}

impl TryFrom<EntryRow> for LedgerEntry {
    type Error = CoreError;

    fn try_from(r: EntryRow) -> Result<Self, CoreError> {
        let product_kind = match r.product_kind.as_str() {
            "pesticide" => ProductKind::Pesticide,
            "fertilizer" => ProductKind::Fertilizer,
            other => return Err(CoreError::Internal(format!("stored product kind {other:?}"))),
        };
        Ok(Self {
            id: r.id,
            dealer_id: r.dealer_id,
            entry_type: EntryType::parse_stored(&r.entry_type)?,
            reverses_id: r.reverses_id,
            reason: r.reason,
            date: r.entry_date,
            product_id: r.product_id,
            product_kind,
            quantity: r.quantity,
            unit: r.unit,
            dimension: Dimension::parse_stored(&r.dimension)?,
            base_amount: r.base_amount,
            label_codes: r
                .label_codes
                .split(',')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect(),
            batch: r.batch,
            supplier: r.supplier,
            buyer_name: r.buyer_name,
            buyer_id_number: r.buyer_id_number,
            buyer_phone: r.buyer_phone,
            buyer_village: r.buyer_village,
            crop: r.crop,
            created_at: r.created_at,
            created_by: r.created_by,
        })
    }
}

fn entry_columns() -> [DealerLedger; 22] {
    [
        DealerLedger::Id,
        DealerLedger::DealerId,
        DealerLedger::EntryType,
        DealerLedger::ReversesId,
        DealerLedger::Reason,
        DealerLedger::EntryDate,
        DealerLedger::ProductId,
        DealerLedger::ProductKind,
        DealerLedger::Quantity,
        DealerLedger::Unit,
        DealerLedger::Dimension,
        DealerLedger::BaseAmount,
        DealerLedger::LabelCodes,
        DealerLedger::Batch,
        DealerLedger::Supplier,
        DealerLedger::BuyerName,
        DealerLedger::BuyerIdNumber,
        DealerLedger::BuyerPhone,
        DealerLedger::BuyerVillage,
        DealerLedger::Crop,
        DealerLedger::CreatedAt,
        DealerLedger::CreatedBy,
    ]
}

/// Appends one entry; `reversal` is (the entry reversed, the reason).
async fn insert_row(tx: &mut Tx, dealer: &Dealer, e: &LedgerEntry) -> Result<i64, CoreError> {
    let q = Query::insert()
        .into_table(DealerLedger::Table)
        .columns(entry_columns().into_iter().skip(1).chain([DealerLedger::DealerRegion]))
        .values_panic([
            e.dealer_id.into(),
            e.entry_type.as_str().into(),
            e.reverses_id.into(),
            e.reason.clone().into(),
            e.date.as_str().into(),
            e.product_id.into(),
            e.product_kind.as_str().into(),
            e.quantity.as_str().into(),
            e.unit.as_str().into(),
            e.dimension.as_str().into(),
            e.base_amount.into(),
            e.label_codes.join(",").into(),
            e.batch.clone().into(),
            e.supplier.clone().into(),
            e.buyer_name.clone().into(),
            e.buyer_id_number.clone().into(),
            e.buyer_phone.clone().into(),
            e.buyer_village.clone().into(),
            e.crop.clone().into(),
            e.created_at.into(),
            e.created_by.into(),
            dealer.region.as_str().into(),
        ])
        .returning_col(DealerLedger::Id)
        .to_owned();
    let (id,): (i64,) = tx
        .fetch_one(&q)
        .await
        .map_err(|e| shuxiang_core::db::on_unique(e, "already_reversed", "the entry is already reversed"))?;
    Ok(id)
}

/// Appends a validated entry of `dealer` for `product`.
pub(crate) async fn insert_entry(
    tx: &mut Tx,
    dealer: &Dealer,
    draft: &Draft,
    product: &Product,
    created_by: i64,
) -> Result<LedgerEntry, CoreError> {
    let buyer = draft.buyer.as_ref();
    let mut entry = LedgerEntry {
        id: 0,
        dealer_id: dealer.id,
        entry_type: draft.entry_type,
        reverses_id: None,
        reason: None,
        date: draft.date.format("%Y-%m-%d").to_string(),
        product_id: product.id,
        product_kind: product.kind,
        quantity: draft.quantity.text.clone(),
        unit: draft.quantity.unit.as_str().into(),
        dimension: draft.quantity.unit.dimension(),
        base_amount: draft.quantity.base_amount,
        label_codes: draft.label_codes.clone(),
        batch: draft.batch.clone(),
        supplier: draft.supplier.clone(),
        buyer_name: buyer.and_then(|b| b.name.clone()),
        buyer_id_number: buyer.and_then(|b| b.id_number.clone()),
        buyer_phone: buyer.and_then(|b| b.phone.clone()),
        buyer_village: buyer.map(|b| b.village.to_string()),
        crop: buyer.and_then(|b| b.crop.clone()),
        created_at: now(),
        created_by,
    };
    entry.id = insert_row(tx, dealer, &entry).await?;
    Ok(entry)
}

/// Appends the reversal of `original`: the same entry, amount negated.
pub(crate) async fn insert_reversal(
    tx: &mut Tx,
    dealer: &Dealer,
    original: &LedgerEntry,
    reason: &str,
    created_by: i64,
) -> Result<LedgerEntry, CoreError> {
    let mut entry = LedgerEntry {
        id: 0,
        reverses_id: Some(original.id),
        reason: Some(reason.to_string()),
        quantity: format!("-{}", original.quantity),
        base_amount: -original.base_amount,
        created_at: now(),
        created_by,
        ..original.clone()
    };
    entry.id = insert_row(tx, dealer, &entry).await?;
    Ok(entry)
}

/// One entry of `dealer_id`, read inside `tx`.
pub(crate) async fn entry_in_tx(tx: &mut Tx, dealer_id: i64, id: i64) -> Result<LedgerEntry, CoreError> {
    let q = Query::select()
        .columns(entry_columns())
        .from(DealerLedger::Table)
        .and_where(Expr::col(DealerLedger::Id).eq(id))
        .and_where(Expr::col(DealerLedger::DealerId).eq(dealer_id))
        .lock(LockType::Update)
        .to_owned();
    let row: Option<EntryRow> = tx.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("dealer {dealer_id} has no ledger entry {id}")))?
        .try_into()
}

pub(crate) async fn entry(db: &Db, dealer_id: i64, id: i64) -> Result<LedgerEntry, CoreError> {
    let q = Query::select()
        .columns(entry_columns())
        .from(DealerLedger::Table)
        .and_where(Expr::col(DealerLedger::Id).eq(id))
        .and_where(Expr::col(DealerLedger::DealerId).eq(dealer_id))
        .to_owned();
    let row: Option<EntryRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("dealer {dealer_id} has no ledger entry {id}")))?
        .try_into()
}

/// Whether an entry has been reversed already.
pub(crate) async fn is_reversed(tx: &mut Tx, id: i64) -> Result<bool, CoreError> {
    let q = Query::select()
        .column(DealerLedger::Id)
        .from(DealerLedger::Table)
        .and_where(Expr::col(DealerLedger::ReversesId).eq(id))
        .to_owned();
    let row: Option<(i64,)> = tx.fetch_optional(&q).await?;
    Ok(row.is_some())
}

/// Filter for listing a ledger.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LedgerQuery {
    /// First business date, inclusive (YYYY-MM-DD).
    pub from: Option<String>,
    /// Last business date, inclusive.
    pub to: Option<String>,
    #[serde(rename = "type")]
    pub entry_type: Option<EntryType>,
    pub product_id: Option<i64>,
    /// Entries with a smaller id (paging back through the ledger).
    pub before_id: Option<i64>,
    pub limit: Option<u64>,
}

/// The newest entries first.
pub(crate) async fn list_entries(db: &Db, dealer_id: i64, f: &LedgerQuery) -> Result<Vec<LedgerEntry>, CoreError> {
    let mut q = Query::select();
    q.columns(entry_columns())
        .from(DealerLedger::Table)
        .and_where(Expr::col(DealerLedger::DealerId).eq(dealer_id))
        .order_by(DealerLedger::Id, Order::Desc)
        .limit(f.limit.unwrap_or(100).clamp(1, 1000));
    if let Some(from) = &f.from {
        q.and_where(Expr::col(DealerLedger::EntryDate).gte(from.as_str()));
    }
    if let Some(to) = &f.to {
        q.and_where(Expr::col(DealerLedger::EntryDate).lte(to.as_str()));
    }
    if let Some(t) = f.entry_type {
        q.and_where(Expr::col(DealerLedger::EntryType).eq(t.as_str()));
    }
    if let Some(p) = f.product_id {
        q.and_where(Expr::col(DealerLedger::ProductId).eq(p));
    }
    if let Some(b) = f.before_id {
        q.and_where(Expr::col(DealerLedger::Id).lt(b));
    }
    let rows: Vec<EntryRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(LedgerEntry::try_from).collect()
}

/// Which of `codes` are currently sold, with the sale entry.
pub(crate) async fn sold_codes(tx: &mut Tx, codes: &[String]) -> Result<Vec<(String, i64)>, CoreError> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for chunk in codes.chunks(500) {
        let q = Query::select()
            .columns([SoldLabelCodes::Code, SoldLabelCodes::EntryId])
            .from(SoldLabelCodes::Table)
            .and_where(Expr::col(SoldLabelCodes::Code).is_in(chunk.iter().map(String::as_str)))
            .to_owned();
        let rows: Vec<(String, i64)> = tx.fetch_all(&q).await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Marks `codes` sold by `entry_id`; a code sold already is a 409.
pub(crate) async fn mark_sold(tx: &mut Tx, entry_id: i64, codes: &[String]) -> Result<(), CoreError> {
    for chunk in codes.chunks(500) {
        let mut q = Query::insert();
        q.into_table(SoldLabelCodes::Table)
            .columns([SoldLabelCodes::Code, SoldLabelCodes::EntryId]);
        for c in chunk {
            q.values_panic([c.as_str().into(), entry_id.into()]);
        }
        tx.execute(&q)
            .await
            .map_err(|e| shuxiang_core::db::on_unique(e, "label_code_sold", "a label code is sold already"))?;
    }
    Ok(())
}

/// Frees the codes of a reversed sale, so the packages can be sold again.
pub(crate) async fn unmark_sold(tx: &mut Tx, entry_id: i64) -> Result<(), CoreError> {
    let q = Query::delete()
        .from_table(SoldLabelCodes::Table)
        .and_where(Expr::col(SoldLabelCodes::EntryId).eq(entry_id))
        .to_owned();
    tx.execute(&q).await?;
    Ok(())
}

/// Stock of a product at a shop in base units of `dimension`: stock in
/// minus sales, reversals included.
pub(crate) async fn stock_balance(
    tx: &mut Tx,
    dealer_id: i64,
    product_id: i64,
    dimension: Dimension,
) -> Result<i64, CoreError> {
    let q = Query::select()
        .expr(Expr::cust(
            "CAST(COALESCE(SUM(CASE WHEN entry_type = 'stock_in' THEN base_amount ELSE -base_amount END), 0) AS BIGINT)",
        ))
        .from(DealerLedger::Table)
        .and_where(Expr::col(DealerLedger::DealerId).eq(dealer_id))
        .and_where(Expr::col(DealerLedger::ProductId).eq(product_id))
        .and_where(Expr::col(DealerLedger::Dimension).eq(dimension.as_str()))
        .to_owned();
    let (sum,): (i64,) = tx.fetch_one(&q).await?;
    Ok(sum)
}

/// A shop's stock of one product in one dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockLine {
    pub product_id: i64,
    pub product_kind: ProductKind,
    pub dimension: Dimension,
    /// In g, mL or pieces; negative when more was sold than stocked in.
    pub base_amount: i64,
    /// In kg, litres or pieces.
    pub quantity: f64,
    /// `kg`, `l` or `piece`.
    pub unit: &'static str,
}

#[derive(sqlx::FromRow)]
struct StockRow {
    product_id: i64,
    product_kind: String,
    dimension: String,
    amount: i64,
}

/// Stock of every product the shop has an entry for, by product id.
pub(crate) async fn stock(db: &Db, dealer_id: i64) -> Result<Vec<StockLine>, CoreError> {
    let q = Query::select()
        .columns([
            DealerLedger::ProductId,
            DealerLedger::ProductKind,
            DealerLedger::Dimension,
        ])
        .expr_as(
            Expr::cust("CAST(SUM(CASE WHEN entry_type = 'stock_in' THEN base_amount ELSE -base_amount END) AS BIGINT)"),
            "amount",
        )
        .from(DealerLedger::Table)
        .and_where(Expr::col(DealerLedger::DealerId).eq(dealer_id))
        .group_by_columns([
            DealerLedger::ProductId,
            DealerLedger::ProductKind,
            DealerLedger::Dimension,
        ])
        .order_by(DealerLedger::ProductId, Order::Asc)
        .order_by(DealerLedger::Dimension, Order::Asc)
        .to_owned();
    let rows: Vec<StockRow> = db.fetch_all(&q).await?;
    rows.into_iter()
        .map(|r| {
            let dimension = Dimension::parse_stored(&r.dimension)?;
            let (quantity, unit) = match dimension {
                Dimension::Mass => (r.amount as f64 / 1000.0, "kg"),
                Dimension::Volume => (r.amount as f64 / 1000.0, "l"),
                Dimension::Count => (r.amount as f64, "piece"),
            };
            Ok(StockLine {
                product_id: r.product_id,
                product_kind: match r.product_kind.as_str() {
                    "pesticide" => ProductKind::Pesticide,
                    "fertilizer" => ProductKind::Fertilizer,
                    other => return Err(CoreError::Internal(format!("stored product kind {other:?}"))),
                },
                dimension,
                base_amount: r.amount,
                quantity,
                unit,
            })
        })
        .collect()
}

/// 异常 kinds supervision lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A sale of a 禁用 product was attempted (and refused).
    BannedProductSale,
    /// A label code already sold was sold again (and refused).
    LabelCodeSoldTwice,
    /// A 限用 product was to be sold without the buyer's ID (and refused).
    RestrictedWithoutBuyerId,
    /// A sale or reversal left the shop's stock of a product below zero.
    NegativeStock,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BannedProductSale => "banned_product_sale",
            Self::LabelCodeSoldTwice => "label_code_sold_twice",
            Self::RestrictedWithoutBuyerId => "restricted_without_buyer_id",
            Self::NegativeStock => "negative_stock",
        }
    }

    fn parse_stored(s: &str) -> Result<Self, CoreError> {
        [
            Self::BannedProductSale,
            Self::LabelCodeSoldTwice,
            Self::RestrictedWithoutBuyerId,
            Self::NegativeStock,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| CoreError::Internal(format!("stored anomaly kind {s:?}")))
    }
}

/// One anomaly, with the dealer it concerns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub id: i64,
    pub kind: AnomalyKind,
    pub dealer_id: i64,
    pub dealer_name: String,
    pub dealer_region: String,
    pub product_id: Option<i64>,
    pub entry_id: Option<i64>,
    pub label_code: Option<String>,
    pub detail: serde_json::Value,
    /// The user whose action raised it.
    pub actor_id: Option<i64>,
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct AnomalyRow {
    id: i64,
    kind: String,
    dealer_id: i64,
    dealer_name: String,
    dealer_region: String,
    product_id: Option<i64>,
    entry_id: Option<i64>,
    label_code: Option<String>,
    detail: String,
    actor_id: Option<i64>,
    at: Timestamp,
}

/// An anomaly to record.
pub(crate) struct NewAnomaly<'a> {
    pub kind: AnomalyKind,
    pub dealer: &'a Dealer,
    pub product_id: Option<i64>,
    pub entry_id: Option<i64>,
    pub label_code: Option<&'a str>,
    pub detail: serde_json::Value,
    pub actor_id: Option<i64>,
}

pub(crate) async fn insert_anomaly(tx: &mut Tx, a: &NewAnomaly<'_>) -> Result<i64, CoreError> {
    let q = Query::insert()
        .into_table(InputAnomalies::Table)
        .columns([
            InputAnomalies::Kind,
            InputAnomalies::DealerId,
            InputAnomalies::DealerRegion,
            InputAnomalies::ProductId,
            InputAnomalies::EntryId,
            InputAnomalies::LabelCode,
            InputAnomalies::Detail,
            InputAnomalies::ActorId,
            InputAnomalies::At,
        ])
        .values_panic([
            a.kind.as_str().into(),
            a.dealer.id.into(),
            a.dealer.region.as_str().into(),
            a.product_id.into(),
            a.entry_id.into(),
            a.label_code.map(String::from).into(),
            a.detail.to_string().into(),
            a.actor_id.into(),
            now().into(),
        ])
        .returning_col(InputAnomalies::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&q).await?;
    Ok(id)
}

/// Filter for listing anomalies.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AnomalyQuery {
    /// Region whose dealers' anomalies to list; default: the caller's scopes.
    pub region: Option<String>,
    pub kind: Option<AnomalyKind>,
    pub dealer_id: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: Option<u64>,
}

/// Newest first, for dealers under `scopes` (`None`: everywhere).
pub(crate) async fn list_anomalies(
    db: &Db,
    scopes: Option<&[RegionCode]>,
    f: &AnomalyQuery,
) -> Result<Vec<Anomaly>, CoreError> {
    let mut q = Query::select();
    q.columns([
        (InputAnomalies::Table, InputAnomalies::Id),
        (InputAnomalies::Table, InputAnomalies::Kind),
        (InputAnomalies::Table, InputAnomalies::DealerId),
        (InputAnomalies::Table, InputAnomalies::DealerRegion),
        (InputAnomalies::Table, InputAnomalies::ProductId),
        (InputAnomalies::Table, InputAnomalies::EntryId),
        (InputAnomalies::Table, InputAnomalies::LabelCode),
        (InputAnomalies::Table, InputAnomalies::Detail),
        (InputAnomalies::Table, InputAnomalies::ActorId),
        (InputAnomalies::Table, InputAnomalies::At),
    ])
    .expr_as(Expr::col((Dealers::Table, Dealers::Name)), "dealer_name")
    .from(InputAnomalies::Table)
    .inner_join(
        Dealers::Table,
        Expr::col((Dealers::Table, Dealers::Id)).equals((InputAnomalies::Table, InputAnomalies::DealerId)),
    )
    .order_by((InputAnomalies::Table, InputAnomalies::Id), Order::Desc)
    .limit(f.limit.unwrap_or(100).clamp(1, 1000));
    in_scopes(
        &mut q,
        || Expr::col((InputAnomalies::Table, InputAnomalies::DealerRegion)),
        scopes,
    );
    if let Some(k) = f.kind {
        q.and_where(Expr::col((InputAnomalies::Table, InputAnomalies::Kind)).eq(k.as_str()));
    }
    if let Some(d) = f.dealer_id {
        q.and_where(Expr::col((InputAnomalies::Table, InputAnomalies::DealerId)).eq(d));
    }
    if let Some(b) = f.before_id {
        q.and_where(Expr::col((InputAnomalies::Table, InputAnomalies::Id)).lt(b));
    }
    let rows: Vec<AnomalyRow> = db.fetch_all(&q).await?;
    rows.into_iter()
        .map(|r| {
            Ok(Anomaly {
                id: r.id,
                kind: AnomalyKind::parse_stored(&r.kind)?,
                dealer_id: r.dealer_id,
                dealer_name: r.dealer_name,
                dealer_region: r.dealer_region,
                product_id: r.product_id,
                entry_id: r.entry_id,
                label_code: r.label_code,
                detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
                actor_id: r.actor_id,
                at: r.at,
            })
        })
        .collect()
}
