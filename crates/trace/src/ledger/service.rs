//! The ledger's rules: who may register a shop, write and read its ledger,
//! reveal a buyer or list anomalies, and what happens when a sale breaks a
//! rule.
//!
//! - Only the shop's owner (role `dealer`, scope covering the shop) writes
//!   its ledger; administrators and officials whose scope covers the shop
//!   read it. Farmers, carriers, experts and village staff never read
//!   ledgers: they hold buyers' personal data. A farmer does not see even
//!   their own purchases (403): accounts carry no verified link to an ID
//!   number, and matching on a typed name or phone would show one person's
//!   purchases to another.
//! - Ledgers list the buyer's ID number masked (`360102********123X`) and
//!   the phone masked (`139****5678`) for everyone, the dealer included. An
//!   administrator or official of the shop's region may reveal one sale's
//!   buyer in full; each reveal is audited.
//! - A sale of a 禁用 banned product, of a 限用 restricted product without
//!   the buyer's name and ID number, or of a label code already sold is
//!   refused, and the attempt is recorded as an anomaly for the county (in
//!   its own transaction, so the refusal does not roll it back).
//! - Stock is not enforced: a sale beyond the recorded stock is kept (a shop
//!   whose earlier purchases are not yet in the ledger must still record the
//!   real-name sale) and raises a `negative_stock` anomaly instead.
//! - Entries are never changed or deleted (the database refuses it); a
//!   mistake is reversed by a new entry. No route deletes ledger data, so it
//!   is kept well beyond the two years required.

use serde::{Deserialize, Serialize};
use serde_json::json;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{self, Actor, Principal, Role};
use shuxiang_core::db::{Db, Tx, on_unique};
use shuxiang_core::{CoreError, RegionCode, RegionLevel, regions};

use super::model::{
    Draft, EntryType, FieldError, RawEntry, Refusal, mask_id_number, parse_query_date, product_rules, validate_draft,
};
use super::store::{
    self, Anomaly, AnomalyKind, AnomalyQuery, Dealer, LedgerEntry, LedgerQuery, NewAnomaly, NewDealerRow, StockLine,
};
use crate::products::{self, Product};

/// Who registers shops, reads every ledger in their scope, reveals buyers
/// and sees anomalies.
pub const SUPERVISORS: &[Role] = &[Role::Admin, Role::Official];
/// Who may call the ledger read routes at all (dealers only for their own shop).
pub const LEDGER_READERS: &[Role] = &[Role::Admin, Role::Official, Role::Dealer];
/// Who writes ledgers: the shop's owner.
pub const WRITERS: &[Role] = &[Role::Dealer];

const MAX_TEXT: usize = 200;

/// A shop to register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDealer {
    pub name: String,
    pub licence_number: String,
    /// County or township code.
    pub region: String,
    pub address: String,
    /// A user holding role `dealer` over a scope covering `region`.
    pub owner_user_id: i64,
}

fn text(raw: &str, field: &'static str) -> Result<String, CoreError> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "invalid_text",
            format!("must be 1 to {MAX_TEXT} characters without control characters"),
        )
        .into());
    }
    Ok(s.to_string())
}

/// Registers a shop; administrators and officials of its region may.
pub async fn create_dealer(db: &Db, caller: &Principal, actor: &Actor, new: NewDealer) -> Result<Dealer, CoreError> {
    caller.require_role(SUPERVISORS)?;
    let name = text(&new.name, "name")?;
    let licence_number = text(&new.licence_number, "licence_number")?;
    let address = text(&new.address, "address")?;
    let code = RegionCode::parse(&new.region)?;
    if !matches!(code.level(), RegionLevel::County | RegionLevel::Township) {
        return Err(CoreError::invalid(
            "invalid_region",
            format!("a shop's region is a county or township code, not {code}"),
        ));
    }
    let region = regions::resolve(db, &code)
        .await?
        .ok_or_else(|| CoreError::invalid("unknown_region", format!("{code} is not a known region")))?
        .code();
    caller.require(SUPERVISORS, &region)?;
    let owner = match auth::get_user(db, caller, new.owner_user_id).await {
        Err(CoreError::NotFound(_)) => {
            return Err(CoreError::invalid(
                "unknown_owner",
                format!("no user {}", new.owner_user_id),
            ));
        }
        other => other?,
    };
    if owner.disabled
        || !owner
            .roles
            .iter()
            .any(|g| g.role == Role::Dealer && g.scope.covers(&region))
    {
        return Err(CoreError::invalid(
            "owner_not_dealer",
            format!(
                "user {} does not hold role dealer over a scope covering {region}",
                owner.username
            ),
        ));
    }
    let mut tx = db.begin().await?;
    let dealer = store::insert_dealer(
        &mut tx,
        &NewDealerRow {
            name: &name,
            licence_number: &licence_number,
            region: region.as_str(),
            address: &address,
            owner_user_id: owner.id,
        },
    )
    .await
    .map_err(|e| {
        on_unique(
            e,
            "licence_taken",
            format!("licence number {licence_number:?} is already registered"),
        )
    })?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "dealer.create",
            target: format!("dealer:{}", dealer.id),
            region: Some(dealer.region.clone()),
            detail: json!({"name": name, "licence_number": licence_number, "owner_user_id": owner.id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(dealer)
}

fn may_write(caller: &Principal, dealer: &Dealer, region: &RegionCode) -> bool {
    caller.user_id == dealer.owner_user_id && caller.can(WRITERS, region)
}

fn may_read(caller: &Principal, dealer: &Dealer, region: &RegionCode) -> bool {
    may_write(caller, dealer, region) || caller.can(SUPERVISORS, region)
}

/// A shop the caller may read: its owner, or a supervisor of its region.
pub async fn get_dealer(db: &Db, caller: &Principal, id: i64) -> Result<Dealer, CoreError> {
    caller.require_role(LEDGER_READERS)?;
    let dealer = store::get_dealer(db, id).await?;
    if !may_read(caller, &dealer, &dealer.region_code()?) {
        return Err(CoreError::Forbidden(format!("dealer {id} is outside your scope")));
    }
    Ok(dealer)
}

pub(super) async fn writable_dealer(db: &Db, caller: &Principal, id: i64) -> Result<Dealer, CoreError> {
    caller.require_role(WRITERS)?;
    let dealer = store::get_dealer(db, id).await?;
    if !may_write(caller, &dealer, &dealer.region_code()?) {
        return Err(CoreError::Forbidden(format!(
            "only the owner of dealer {id} writes its ledger"
        )));
    }
    Ok(dealer)
}

/// Shops the caller may read, optionally only those under `region`.
pub async fn list_dealers(db: &Db, caller: &Principal, region: Option<&str>) -> Result<Vec<Dealer>, CoreError> {
    caller.require_role(LEDGER_READERS)?;
    let region = region.map(RegionCode::parse).transpose()?;
    if let Some(r) = &region {
        caller.require_see(r)?;
    }
    let mut out = Vec::new();
    if caller.require_role(SUPERVISORS).is_ok() {
        let scopes = caller.scopes(Some(SUPERVISORS));
        out = store::list_dealers(db, scopes.as_deref(), None).await?;
    }
    if caller.require_role(WRITERS).is_ok() {
        for d in store::list_dealers(db, None, Some(caller.user_id)).await? {
            if !out.iter().any(|o| o.id == d.id) && may_write(caller, &d, &d.region_code()?) {
                out.push(d);
            }
        }
        out.sort_by_key(|d| d.id);
    }
    if let Some(r) = &region {
        out.retain(|d| d.region_code().is_ok_and(|c| r.covers(&c)));
    }
    Ok(out)
}

/// The product of an entry; an unknown id is the entry's fault (422).
pub(super) async fn product_of(db: &Db, id: i64) -> Result<Product, CoreError> {
    products::get(db, id).await.map_err(|e| match e {
        CoreError::NotFound(_) => FieldError::new("product_id", "unknown_product", format!("no product {id}")).into(),
        other => other,
    })
}

pub(super) async fn village_exists(db: &Db, code: &RegionCode) -> Result<bool, CoreError> {
    Ok(regions::get(db, code).await?.is_some())
}

fn first_error(errors: Vec<FieldError>) -> CoreError {
    errors
        .into_iter()
        .next()
        .map(CoreError::from)
        .unwrap_or_else(|| CoreError::Internal("validation failed without an error".into()))
}

/// Records an anomaly and its audit entry in `tx`.
async fn raise_in(tx: &mut Tx, actor: &Actor, a: NewAnomaly<'_>) -> Result<i64, CoreError> {
    let id = store::insert_anomaly(tx, &a).await?;
    audit::record(
        tx,
        actor,
        AuditEvent {
            action: "input_anomaly.raise",
            target: format!("input_anomaly:{id}"),
            region: Some(a.dealer.region.clone()),
            detail: json!({"kind": a.kind, "dealer_id": a.dealer.id, "product_id": a.product_id,
                "entry_id": a.entry_id, "label_code": a.label_code}),
        },
    )
    .await?;
    Ok(id)
}

/// Records an anomaly for a refused attempt, committed on its own.
async fn raise(db: &Db, actor: &Actor, a: NewAnomaly<'_>) -> Result<(), CoreError> {
    let mut tx = db.begin().await?;
    raise_in(&mut tx, actor, a).await?;
    tx.commit().await
}

fn attempt_detail(draft: &Draft, product: &Product) -> serde_json::Value {
    let buyer = draft.buyer.as_ref();
    json!({
        "product_name": product.name,
        "registration_number": product.registration_number,
        "quantity": draft.quantity.text,
        "unit": draft.quantity.unit.as_str(),
        "date": draft.date.format("%Y-%m-%d").to_string(),
        "buyer_name": buyer.and_then(|b| b.name.clone()),
        "buyer_id_number": buyer.and_then(|b| b.id_number.as_deref().map(mask_id_number)),
        "buyer_village": buyer.map(|b| b.village.to_string()),
    })
}

pub(super) fn audit_detail(entry: &LedgerEntry) -> serde_json::Value {
    json!({
        "dealer_id": entry.dealer_id,
        "product_id": entry.product_id,
        "date": entry.date,
        "quantity": entry.quantity,
        "unit": entry.unit,
        "label_codes": entry.label_codes.len(),
        "buyer_id_number": entry.buyer_id_number.as_deref().map(mask_id_number),
        "buyer_village": entry.buyer_village,
    })
}

/// Raises `negative_stock` in `tx` when `entry` left its product's stock
/// at the shop below zero.
pub(super) async fn check_stock(
    tx: &mut Tx,
    actor: &Actor,
    dealer: &Dealer,
    entry: &LedgerEntry,
) -> Result<(), CoreError> {
    let balance = store::stock_balance(tx, dealer.id, entry.product_id, entry.dimension).await?;
    if balance < 0 {
        raise_in(
            tx,
            actor,
            NewAnomaly {
                kind: AnomalyKind::NegativeStock,
                dealer,
                product_id: Some(entry.product_id),
                entry_id: Some(entry.id),
                label_code: None,
                detail: json!({"dimension": entry.dimension, "balance": balance}),
                actor_id: actor.user_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// Records a stock-in (进货) in the caller's own shop.
pub async fn record_stock_in(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    dealer_id: i64,
    raw: RawEntry,
) -> Result<LedgerEntry, CoreError> {
    record(db, caller, actor, dealer_id, EntryType::StockIn, raw).await
}

/// Records a real-name sale (实名销售) in the caller's own shop.
pub async fn record_sale(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    dealer_id: i64,
    raw: RawEntry,
) -> Result<LedgerEntry, CoreError> {
    record(db, caller, actor, dealer_id, EntryType::Sale, raw).await
}

async fn record(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    dealer_id: i64,
    entry_type: EntryType,
    raw: RawEntry,
) -> Result<LedgerEntry, CoreError> {
    let dealer = writable_dealer(db, caller, dealer_id).await?;
    let draft = validate_draft(entry_type, &raw).map_err(first_error)?;
    let product = product_of(db, draft.product_id).await?;
    if let Err(refusal) = product_rules(&draft, &product) {
        let kind = match refusal {
            Refusal::Banned => Some(AnomalyKind::BannedProductSale),
            Refusal::RestrictedWithoutBuyerId => Some(AnomalyKind::RestrictedWithoutBuyerId),
            Refusal::Invalid(_) => None,
        };
        if let Some(kind) = kind {
            raise(
                db,
                actor,
                NewAnomaly {
                    kind,
                    dealer: &dealer,
                    product_id: Some(product.id),
                    entry_id: None,
                    label_code: None,
                    detail: attempt_detail(&draft, &product),
                    actor_id: actor.user_id,
                },
            )
            .await?;
        }
        return Err(refusal.field_error(&product).into());
    }
    if let Some(b) = &draft.buyer
        && !village_exists(db, &b.village).await?
    {
        return Err(FieldError::new(
            "buyer_village",
            "unknown_village",
            format!("{} is not a known village", b.village),
        )
        .into());
    }
    let mut tx = db.begin().await?;
    if entry_type == EntryType::Sale {
        let sold = store::sold_codes(&mut tx, &draft.label_codes).await?;
        if let Some((code, sold_in)) = sold.into_iter().next() {
            drop(tx);
            return Err(code_sold_twice(db, actor, &dealer, &draft, &product, &code, Some(sold_in)).await);
        }
    }
    let entry = store::insert_entry(&mut tx, &dealer, &draft, &product, caller.user_id).await?;
    if entry_type == EntryType::Sale {
        if let Err(e) = store::mark_sold(&mut tx, entry.id, &draft.label_codes).await {
            drop(tx);
            if e.code() != "label_code_sold" {
                return Err(e);
            }
            // Sold by a concurrent request between the check and the insert.
            let code = draft.label_codes.first().cloned().unwrap_or_default();
            return Err(code_sold_twice(db, actor, &dealer, &draft, &product, &code, None).await);
        }
        check_stock(&mut tx, actor, &dealer, &entry).await?;
    }
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: match entry_type {
                EntryType::StockIn => "dealer_ledger.stock_in",
                EntryType::Sale => "dealer_ledger.sale",
            },
            target: format!("dealer_ledger:{}", entry.id),
            region: Some(dealer.region.clone()),
            detail: audit_detail(&entry),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(entry.masked())
}

/// Records the `label_code_sold_twice` anomaly and returns the 409 to answer.
async fn code_sold_twice(
    db: &Db,
    actor: &Actor,
    dealer: &Dealer,
    draft: &Draft,
    product: &Product,
    code: &str,
    sold_in: Option<i64>,
) -> CoreError {
    let mut detail = attempt_detail(draft, product);
    detail["sold_in_entry"] = json!(sold_in);
    let raised = raise(
        db,
        actor,
        NewAnomaly {
            kind: AnomalyKind::LabelCodeSoldTwice,
            dealer,
            product_id: Some(product.id),
            entry_id: None,
            label_code: Some(code),
            detail,
            actor_id: actor.user_id,
        },
    )
    .await;
    match raised {
        Ok(()) => CoreError::conflict(
            "label_code_sold",
            format!("label code {code} is already sold; the attempt is reported to the county"),
        ),
        Err(e) => e,
    }
}

/// Reverses (冲销) an entry of the caller's own shop: a new entry with the
/// amount negated; a sale's label codes become sellable again. An entry is
/// reversed at most once, and reversals are not reversed (record the entry
/// anew instead).
pub async fn reverse(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    dealer_id: i64,
    entry_id: i64,
    reason: &str,
) -> Result<LedgerEntry, CoreError> {
    let dealer = writable_dealer(db, caller, dealer_id).await?;
    let reason = text(reason, "reason")?;
    let mut tx = db.begin().await?;
    let original = store::entry_in_tx(&mut tx, dealer.id, entry_id).await?;
    if original.reverses_id.is_some() {
        return Err(CoreError::invalid(
            "cannot_reverse_reversal",
            format!("entry {entry_id} is itself a reversal; record the entry again instead"),
        ));
    }
    if store::is_reversed(&mut tx, entry_id).await? {
        return Err(CoreError::conflict(
            "already_reversed",
            format!("entry {entry_id} is already reversed"),
        ));
    }
    let entry = store::insert_reversal(&mut tx, &dealer, &original, &reason, caller.user_id).await?;
    match original.entry_type {
        EntryType::Sale => store::unmark_sold(&mut tx, original.id).await?,
        EntryType::StockIn => check_stock(&mut tx, actor, &dealer, &entry).await?,
    }
    let mut detail = audit_detail(&entry);
    detail["reverses_id"] = json!(original.id);
    detail["reason"] = json!(reason);
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "dealer_ledger.reverse",
            target: format!("dealer_ledger:{}", entry.id),
            region: Some(dealer.region.clone()),
            detail,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(entry.masked())
}

/// A shop's ledger, newest first, buyers masked.
pub async fn ledger(
    db: &Db,
    caller: &Principal,
    dealer_id: i64,
    q: &LedgerQuery,
) -> Result<Vec<LedgerEntry>, CoreError> {
    let dealer = get_dealer(db, caller, dealer_id).await?;
    for (field, d) in [("from", &q.from), ("to", &q.to)] {
        if let Some(d) = d {
            parse_query_date(d, field)?;
        }
    }
    Ok(store::list_entries(db, dealer.id, q)
        .await?
        .into_iter()
        .map(LedgerEntry::masked)
        .collect())
}

/// A shop's current stock per product and dimension (stock in minus sales,
/// reversals included).
pub async fn stock(db: &Db, caller: &Principal, dealer_id: i64) -> Result<Vec<StockLine>, CoreError> {
    let dealer = get_dealer(db, caller, dealer_id).await?;
    store::stock(db, dealer.id).await
}

/// One sale's buyer in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuyerDetails {
    pub entry_id: i64,
    pub buyer_name: Option<String>,
    pub buyer_id_number: Option<String>,
    pub buyer_phone: Option<String>,
    pub buyer_village: Option<String>,
}

/// Reveals one sale's buyer to an administrator or official of the shop's
/// region, audited as `dealer_ledger.reveal_buyer`.
pub async fn reveal_buyer(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    dealer_id: i64,
    entry_id: i64,
) -> Result<BuyerDetails, CoreError> {
    caller.require_role(SUPERVISORS)?;
    let dealer = store::get_dealer(db, dealer_id).await?;
    caller.require(SUPERVISORS, &dealer.region_code()?)?;
    let entry = store::entry(db, dealer.id, entry_id).await?;
    if entry.entry_type != EntryType::Sale {
        return Err(CoreError::invalid(
            "not_a_sale",
            format!("entry {entry_id} is a stock-in and has no buyer"),
        ));
    }
    let mut tx = db.begin().await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "dealer_ledger.reveal_buyer",
            target: format!("dealer_ledger:{entry_id}"),
            region: Some(dealer.region.clone()),
            detail: json!({"dealer_id": dealer.id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(BuyerDetails {
        entry_id,
        buyer_name: entry.buyer_name,
        buyer_id_number: entry.buyer_id_number,
        buyer_phone: entry.buyer_phone,
        buyer_village: entry.buyer_village,
    })
}

/// Anomalies of shops under `q.region` (default: all the caller
/// supervises), newest first.
pub async fn anomalies(db: &Db, caller: &Principal, q: &AnomalyQuery) -> Result<Vec<Anomaly>, CoreError> {
    caller.require_role(SUPERVISORS)?;
    match q.region.as_deref() {
        Some(r) => {
            let code = RegionCode::parse(r)?;
            caller.require(SUPERVISORS, &code)?;
            store::list_anomalies(db, Some(&[code]), q).await
        }
        None => store::list_anomalies(db, caller.scopes(Some(SUPERVISORS)).as_deref(), q).await,
    }
}
